// sqzJoin (Horovod's join, for uneven data): joined ranks serve the others'
// host allreduces with zeros, every other collective fails on the ranks
// that called it, and every rank learns which rank joined last.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness/rank_threads.h"

namespace sqz::test {
namespace {

std::string lastError(sqzComm_t comm) { return sqzGetLastError(comm); }

// Rank r runs r allreduces (Sum, Avg, Max) and joins; the joined ranks add
// zeros, sqzAvg divides by all ranks, and the rank with the most calls
// joined last. Afterwards every collective works again.
TEST(Join, UnevenRanksJoinInTurn) {
  const int n = 4;
  std::vector<int> last(n, -1);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (int i = 0; i < rank; ++i) {
      // Ranks still in: i + 1 .. n - 1, each sending rank + 1.
      float sum = 0;
      for (int q = i + 1; q < n; ++q) sum += static_cast<float>(q + 1);
      std::vector<float> s(10000, static_cast<float>(rank + 1));  // above SQZ_DIRECT_MAX_BYTES: the ring
      ASSERT_EQ(sqzAllReduce(s.data(), s.data(), s.size(), sqzFloat32, sqzSum, comm, nullptr), sqzSuccess)
          << lastError(comm);
      for (float x : s) ASSERT_EQ(x, sum);
      std::vector<double> a(7, static_cast<double>(rank + 1));
      ASSERT_EQ(sqzAllReduce(a.data(), a.data(), a.size(), sqzFloat64, sqzAvg, comm, nullptr), sqzSuccess);
      for (double x : a) ASSERT_EQ(x, sum / n);
      std::vector<int64_t> m(5, -(rank + 1));
      ASSERT_EQ(sqzAllReduce(m.data(), m.data(), m.size(), sqzInt64, sqzMax, comm, nullptr), sqzSuccess);
      for (int64_t x : m) ASSERT_EQ(x, 0);  // a joined rank's zero is the max
      // Lossy compression is set aside while a rank has joined: exact.
      std::vector<float> q(1 << 14, static_cast<float>(rank + 1));
      ASSERT_EQ(sqzAllReduceEx(q.data(), q.data(), q.size(), sqzFloat32, sqzSum, "q2", nullptr, comm, nullptr),
                sqzSuccess)
          << lastError(comm);
      for (float x : q) ASSERT_EQ(x, sum);
      // So is a plan naming an exact algorithm, which the joined ranks cannot
      // see: the size's own algorithm runs (direct here, not the ring).
      std::vector<float> f(64, static_cast<float>(rank + 1));
      ASSERT_EQ(sqzAllReduceEx(f.data(), f.data(), f.size(), sqzFloat32, sqzSum, "@ring", nullptr, comm, nullptr),
                sqzSuccess)
          << lastError(comm);
      for (float x : f) ASSERT_EQ(x, sum);
    }
    ASSERT_EQ(sqzJoin(comm, &last[rank]), sqzSuccess) << lastError(comm);
    // A compressed call without a state: its random stream is keyed by the
    // number of allreduces, which the joined ranks counted too.
    std::vector<float> c(1 << 14, 1.0f);
    ASSERT_EQ(sqzAllReduceEx(c.data(), c.data(), c.size(), sqzFloat32, sqzSum, "q2", nullptr, comm, nullptr),
              sqzSuccess)
        << lastError(comm);
    for (float x : c) ASSERT_NEAR(x, static_cast<float>(n), 0.5f);
    std::vector<int32_t> v(4, rank);
    ASSERT_EQ(sqzAllReduce(v.data(), v.data(), v.size(), sqzInt32, sqzSum, comm, nullptr), sqzSuccess);
    for (int32_t x : v) EXPECT_EQ(x, n * (n - 1) / 2);
    EXPECT_EQ(sqzBarrier(comm), sqzSuccess) << lastError(comm);
  });
  for (int r = 0; r < n; ++r) EXPECT_EQ(last[r], n - 1) << "rank " << r;
}

// While rank 2 has joined, broadcast, allgather and barrier fail with the
// same message on every rank still in (and move no data); the joined rank
// keeps serving, and allreduces in between still work.
TEST(Join, OtherCollectivesFailWhileARankHasJoined) {
  const int n = 3;
  std::vector<std::string> messages(n);
  std::vector<int> last(n, -1);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    if (rank == 2) {
      ASSERT_EQ(sqzJoin(comm, &last[rank]), sqzSuccess) << lastError(comm);
      return;
    }
    std::vector<float> buf(8, 1.0f), all(8 * n);
    EXPECT_EQ(sqzBroadcast(buf.data(), buf.data(), buf.size(), sqzFloat32, 0, comm, nullptr), sqzInvalidUsage);
    messages[rank] = lastError(comm);
    EXPECT_NE(messages[rank].find("broadcast is not supported while rank 2 has joined"), std::string::npos)
        << messages[rank];
    EXPECT_EQ(sqzAllGather(buf.data(), all.data(), buf.size(), sqzFloat32, comm, nullptr), sqzInvalidUsage);
    EXPECT_EQ(sqzBarrier(comm), sqzInvalidUsage);
    ASSERT_EQ(sqzAllReduce(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    for (float x : buf) EXPECT_EQ(x, 2.0f);
    if (rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(sqzJoin(comm, &last[rank]), sqzSuccess) << lastError(comm);
  });
  EXPECT_EQ(messages[0].substr(messages[0].find(':')), messages[1].substr(messages[1].find(':')));
  for (int r = 0; r < n; ++r) EXPECT_EQ(last[r], 0) << "rank " << r;  // ranks 0 and 1 tie on calls: the clock
}

// Ranks that join after the same calls are ordered by when they joined
// (rank 1, then rank 0, comes 300 ms after the others); ranks that join
// together: the highest is last.
TEST(Join, TiesInCallsGoToTheLaterClock) {
  const int n = 3;
  std::vector<int> first(n, -1), second(n, -1), together(n, -1);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(sqzJoin(comm, &first[rank]), sqzSuccess) << lastError(comm);
    if (rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(sqzJoin(comm, &second[rank]), sqzSuccess) << lastError(comm);
    ASSERT_EQ(sqzJoin(comm, &together[rank]), sqzSuccess) << lastError(comm);
  });
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(first[r], 1) << "rank " << r;
    EXPECT_EQ(second[r], 0) << "rank " << r;
    EXPECT_EQ(together[r], n - 1) << "rank " << r;
  }
  EXPECT_EQ(sqzJoin(nullptr, nullptr), sqzInvalidArgument);
}

TEST(Join, OneRankReturnsAtOnce) {
  runRanks(1, [&](int, sqzComm_t& comm) {
    int last = -1;
    ASSERT_EQ(sqzJoin(comm, &last), sqzSuccess);
    EXPECT_EQ(last, 0);
    EXPECT_EQ(sqzJoin(comm, nullptr), sqzInvalidArgument);
  });
}

}  // namespace
}  // namespace sqz::test
