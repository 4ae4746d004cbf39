// The soak's load (tests/soak/sqz_soak.cc): which call comes next, and what
// each rank sends in it, drawn from (seed, call index) alone, so every rank
// makes the same draw and any rank can rebuild every other rank's input to
// check a result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sqz.h"

namespace sqz::soak {

struct Call {
  enum Kind { kLossy, kExact, kBroadcast, kAllGather, kBarrier, kPolicy, kReform, kNumKinds } kind = kLossy;
  size_t count = 0;
  sqzDataType_t type = sqzFloat32;
  sqzRedOp_t op = sqzSum;
  std::string spec;         // lossy: "" = the communicator's policy; policy: the new one
  bool inPlace = false;
  bool freshState = true;   // lossy: an explicit state made for the call, else none (sqzAllReduceEx with NULL)
  bool sparse = false;      // lossy: 1% of the elements nonzero
  int root = 0;
};

// Call `index` of a run: sizes log-uniform from 1 element to 16 Mi (at most
// maxCount); float
// sums and averages with every codec, auto, forced plans or the policy
// (70%); exact allreduces of every type and op; broadcast, allgather,
// barrier, policy changes, and the communicator destroyed and formed again.
Call drawCall(uint64_t seed, uint64_t index, int nranks, size_t maxCount);

// Rank r's input to lossy call `index`, as floats the call's type holds exactly.
std::vector<float> lossyInput(uint64_t seed, uint64_t index, int rank, const Call& call);

// x stored as `type` (fp32, fp16 or bf16), one spare byte past the end.
std::vector<unsigned char> toType(const std::vector<float>& x, sqzDataType_t type);

}  // namespace sqz::soak
