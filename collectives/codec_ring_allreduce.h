// Compressed ring allreduce: the ring's reduce-scatter with every hop's
// partial sum encoded by a dense codec (bf16, fp16, q8..q1, sign) and
// decoded + added by the next rank, then the owner's encoded final segment
// forwarded unchanged around the ring and decoded by all (bitwise-identical
// outputs). N-1 sequential steps per phase: fewer concurrent messages than
// the all-to-all form, for large rank counts. Each rank encodes each
// segment exactly once and keeps what the encoding dropped in its residual,
// so no gradient mass is lost across calls.
//
// Pipelined as the exact ring is: every segment travels as chunks that are
// encoded, sent, decoded and forwarded one by one, so the link carries one
// chunk while the next is encoded or decoded. Chunks are whole codec blocks
// from the segment's start, and the RNG key of an element is its index in
// the buffer, so the result does not depend on the chunking.
#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "transport/transport.h"

namespace sqz {

class CodecRingAllreduce {
 public:
  // chunkBytes: the exact ring's pipelining granularity (SQZ_CHUNK_BYTES).
  CodecRingAllreduce(Transport& transport, size_t chunkBytes);
  void run(const CompressedArgs& args);

  // Elements per chunk of a segment, for `codec` on `count` elements over
  // `nranks`: a quarter of chunkBytes of fp32 input, rounded up to whole
  // blocks and to at most the chunks a ring step's tag slots hold.
  static size_t chunkElements(const CodecParams& codec, size_t chunkBytes, size_t count, int nranks);

 private:
  class Call;

  Transport& transport_;
  size_t chunkBytes_;
  std::vector<float> acc_, ownResidual_;
  // Encoded segments, chunk after chunk: [0, 1] what this rank sends at
  // even / odd reduce-scatter steps, [2, 3] what it receives there, [4 + r]
  // segment r's final payload.
  std::vector<unsigned char> payloads_;
};

}  // namespace sqz
