// Top-K sparse allreduce, two shapes:
//  - allgather: every rank's top-K (index, value) payload goes to every
//    rank, which scatter-adds all N in rank order (identical outputs). When
//    N*K pairs would outweigh the dense buffer, the sparsified vectors go
//    through the exact dense ring instead ("dense switch").
//  - split: the pairs of index range j go to rank j, which sums them and
//    allgathers its range as exact (index, value) pairs or dense values,
//    whichever is smaller.
// Error feedback: what top-K leaves out stays in the residual.
#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "collectives/ring_allreduce.h"
#include "transport/transport.h"

namespace sqz {

class SparseAllreduce {
 public:
  enum class Shape { kAllgather, kSplit };
  SparseAllreduce(Transport& transport, RingAllreduce& ring) : transport_(transport), ring_(ring) {}
  void run(const CompressedArgs& args, Shape shape);

  // True when the allgather of N payloads would move more bytes than the
  // dense ring on the same buffer (then the dense switch fires).
  // The codec as its payloads go on the wire: top-K with blocked 16-bit
  // indices where they are smaller (kernels/wire_format.h). Every rank
  // derives it the same way, so payload sizes stay known in advance.
  static CodecParams wireCodec(const CodecParams& codec);
  static bool denseIsCheaper(const CodecParams& codec, size_t count, int nranks);
  static double bytesSentPerRank(const CodecParams& codec, size_t count, int nranks, Shape shape);

 private:
  void runAllgather(const CompressedArgs& a);
  void runSplit(const CompressedArgs& a);

  Transport& transport_;
  RingAllreduce& ring_;
  std::vector<unsigned char> payloads_;
  std::vector<float> dense_;
};

}  // namespace sqz
