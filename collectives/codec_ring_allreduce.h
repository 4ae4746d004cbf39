// Compressed ring allreduce: the ring's reduce-scatter with every hop's
// partial sum encoded by a dense codec (bf16, fp16, q8..q1) and decoded +
// added by the next rank, then the owner's encoded final segment forwarded
// unchanged around the ring and decoded by all (bitwise-identical
// outputs). N-1 sequential single-message steps per phase: fewer concurrent
// messages than the all-to-all form, for large rank counts. Each rank
// encodes each segment exactly once and keeps what the encoding dropped in
// its residual, so no gradient mass is lost across calls.
#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "transport/transport.h"

namespace sqz {

class CodecRingAllreduce {
 public:
  explicit CodecRingAllreduce(Transport& transport) : transport_(transport) {}
  void run(const CompressedArgs& args);

 private:
  Transport& transport_;
  std::vector<float> acc_, ownResidual_;
  std::vector<unsigned char> payloads_;
};

}  // namespace sqz
