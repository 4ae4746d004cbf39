// Compressed allreduce by allgather of whole-buffer payloads (host
// buffers; the device path has its own, src/device/device_path.cc): each
// rank encodes its whole buffer once, with its error feedback, the N
// payloads are allgathered, and every rank decodes all of them in rank
// order (fp32), so outputs are bitwise identical. Nothing is re-encoded:
// every element passes one encoding, where qa2a's owner re-encodes the sum
// of decoded chunks. Each rank sends its payload to N - 1 peers, (N - 1) P
// bytes, against qa2a's 2 (N - 1) / N P: twice as many at 4 ranks. For the
// scaled sign the second encoding is what loses accuracy
// (perf/results/training.md, issue 14's sign section), so this is the
// sign's default on host buffers while it sends less than the exact ring
// (src/tuner/algorithm_table.cc).
#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "transport/transport.h"

namespace sqz {

class GatherAllreduce {
 public:
  explicit GatherAllreduce(Transport& transport) : transport_(transport) {}
  void run(const CompressedArgs& args);

  static double bytesSentPerRank(double payloadBytes, int nranks) { return payloadBytes * (nranks - 1); }

 private:
  Transport& transport_;
  std::vector<unsigned char> gathered_;
  std::vector<float> out_;
};

}  // namespace sqz
