// One compressed allreduce of float32 gradients on threads as ranks (each
// its own communicator), with what a value check needs: every rank's
// output and call info, and what each rank contributed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/lossy_check.h"
#include "sqz.h"

namespace sqz::test {

struct CompressedCall {
  std::vector<std::vector<float>> outputs;  // per rank
  std::vector<sqzCallInfo> infos;           // per rank
  Contributions inputs;                     // per rank: rankGradient(rank, count, seed)
  // The call as checkLossy reads it (rank 0's info).
  LossyCall call(sqzRedOp_t op = sqzSum) const { return LossyCall::of(infos.at(0), sqzFloat32, op); }
};

// sqzAllReduceEx(spec) once on n ranks, fresh state, SQZ_MIN_BYTES=0.
CompressedCall runCompressedCall(int n, const std::string& spec, size_t count, sqzRedOp_t op = sqzSum,
                                 uint64_t seed = 7);

}  // namespace sqz::test
