#include "harness/compressed_call.h"

#include <gtest/gtest.h>

#include "harness/rank_threads.h"
#include "harness/reference.h"

namespace sqz::test {

CompressedCall runCompressedCall(int n, const std::string& spec, size_t count, sqzRedOp_t op, uint64_t seed) {
  CompressedCall o;
  o.outputs.resize(n);
  o.infos.resize(n);
  o.inputs.resize(n);
  for (int r = 0; r < n; ++r) o.inputs[r] = rankGradient(r, count, seed);
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> out(count + 1);
    ASSERT_EQ(sqzAllReduceEx(o.inputs[rank].data(), out.data(), count, sqzFloat32, op, spec.c_str(), nullptr, comm,
                             nullptr),
              sqzSuccess)
        << spec << ": " << sqzGetLastError(comm);
    out.resize(count);
    o.outputs[rank] = std::move(out);
    sqzGetCallInfo(comm, &o.infos[rank]);
  });
  return o;
}

}  // namespace sqz::test
