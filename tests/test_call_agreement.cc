// The call header's agreement beyond a call's arguments (items the ranks
// must share for their messages and sums to match): a mismatch is
// sqzInvalidUsage on every rank, naming what differs, never a silently
// wrong sum. Settings from the environment are in test_processes.cc (each
// rank a process with its own environment).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness/rank_threads.h"
#include "harness/reference.h"

namespace sqz::test {
namespace {

// Random-K draws its indices from (seed, step). Two states at different
// steps (a state recreated on one rank, say) would sum values of different
// elements; the header carries a hash of (seed, step), so every rank fails.
TEST(CallAgreement, RandomStreamsThatDifferAreAnErrorOnEveryRank) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const size_t count = 10007;
  runRanks(3, [&](int rank, sqzComm_t& comm) {
    sqzState_t used, fresh;
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &used), sqzSuccess);
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &fresh), sqzSuccess);
    std::vector<float> g = rankGradient(rank, count, 9), out(count);
    ASSERT_EQ(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, "randk:0.1", used, comm, nullptr),
              sqzSuccess);
    // Rank 1 continues on a fresh state (step 0); the others on the used one (step 1).
    sqzState_t mine = rank == 1 ? fresh : used;
    EXPECT_EQ(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, "randk:0.1", mine, comm, nullptr),
              sqzInvalidUsage);
    EXPECT_NE(std::string(sqzGetLastError(comm)).find("random stream"), std::string::npos) << sqzGetLastError(comm);
    // The communicator keeps working.
    EXPECT_EQ(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, "randk:0.1", used, comm, nullptr),
              sqzSuccess)
        << sqzGetLastError(comm);
    sqzStateDestroy(used);
    sqzStateDestroy(fresh);
  });
}

}  // namespace
}  // namespace sqz::test
