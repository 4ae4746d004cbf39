// Compressed allreduce by all-to-all reduce-scatter and allgather (the
// shape of DESIGN.md section 2): each rank encodes, once, the chunk every
// peer owns (with its error feedback) and sends it there; the owner adds
// its own exact chunk and the decoded contributions in rank order (fp32),
// re-encodes the reduced chunk with owner-side error feedback, and
// allgathers it. Every rank decodes the same N payloads, so outputs are
// bitwise identical. Works for any dense codec (q8/q4/q2/q1, bf16, fp16).
#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "transport/transport.h"

namespace sqz {

class QuantizedAllreduce {
 public:
  explicit QuantizedAllreduce(Transport& transport) : transport_(transport) {}
  void run(const CompressedArgs& args);

 private:
  Transport& transport_;
  std::vector<unsigned char> sendPayloads_, recvPayloads_, gathered_;
  std::vector<float> acc_, out_;
};

}  // namespace sqz
