// The shared-memory allreduce (collectives/shm_allreduce.h) over
// threads-as-ranks, which share a node: exact against the fp64 reference
// on random data, odd sizes, 3 and 4 ranks, in and out of place, the same
// bytes on every rank; a mismatched call fails on every rank before any
// output is written; a rank that never arrives fails the others within
// SQZ_TIMEOUT; a segment that a rank cannot map leaves every rank on the
// transport.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "collectives/shm_segment.h"
#include "common/dtype.h"
#include "harness/rank_threads.h"
#include "harness/reference.h"
#include "src/tuner/algorithm_table.h"

namespace sqz::test {
namespace {

std::string algorithmOf(sqzComm_t comm) {
  sqzCallInfo info;
  EXPECT_EQ(sqzGetCallInfo(comm, &info), sqzSuccess);
  return info.algorithm;
}

class ShmAllreduceValues : public ::testing::TestWithParam<std::tuple<int, bool, bool>> {};

// Forced "@shm" at every size a slot holds; the default (no plan): shm where
// it prefers shm, shm_rs above.
TEST_P(ShmAllreduceValues, ExactAgainstTheFp64ReferenceAndIdenticalOnEveryRank) {
  const auto [n, inPlace, forced] = GetParam();
  const std::vector<size_t> counts = {1, 2, 7, 129, 1023, 4099, ShmSegment::kPayloadMaxBytes / sizeof(float)};
  std::vector<std::vector<std::vector<unsigned char>>> results(counts.size(), std::vector<std::vector<unsigned char>>(n));
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (size_t k = 0; k < counts.size(); ++k) {
      std::vector<unsigned char> in = makeInput(sqzFloat32, sqzSum, rank, counts[k], 100 + k);
      std::vector<unsigned char> out(in.size(), 0xee);
      void* recv = inPlace ? in.data() : out.data();
      ASSERT_EQ(sqzAllReduceEx(in.data(), recv, counts[k], sqzFloat32, sqzSum, forced ? "@shm" : nullptr, nullptr,
                               comm, nullptr),
                sqzSuccess)
          << sqzGetLastError(comm);
      // Unforced, shm takes the sizes where it was measured faster.
      const bool shmSize = forced || counts[k] * sizeof(float) <= kShmPreferredMaxBytes;
      EXPECT_EQ(algorithmOf(comm), shmSize ? "shm" : "shm_rs") << "count " << counts[k];
      const auto* r = static_cast<const unsigned char*>(recv);
      results[k][rank].assign(r, r + counts[k] * sizeof(float));
    }
  });
  for (size_t k = 0; k < counts.size(); ++k) {
    std::vector<std::vector<unsigned char>> inputs;
    for (int r = 0; r < n; ++r) inputs.push_back(makeInput(sqzFloat32, sqzSum, r, counts[k], 100 + k));
    ASSERT_EQ(results[k][0].size(), counts[k] * sizeof(float));
    EXPECT_EQ(checkReduction(inputs, results[k][0].data(), sqzFloat32, sqzSum, counts[k]), "") << "count " << counts[k];
    for (int r = 1; r < n; ++r)
      EXPECT_TRUE(results[k][r] == results[k][0]) << "rank " << r << " differs from rank 0 at count " << counts[k];
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, ShmAllreduceValues,
                         ::testing::Combine(::testing::Values(3, 4), ::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return "n" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_inplace" : "_outofplace") +
                                  (std::get<2>(info.param) ? "_forced" : "_default");
                         });

// Every type and op through one forced algorithm (16-bit floats widen to
// fp32): exact against the reference, the same bytes on every rank.
void expectEveryTypeAndOp(int n, size_t count, const char* plan, const std::string& algorithm, uint64_t seed) {
  for (int t = 0; t < static_cast<int>(sqzNumTypes); ++t) {
    for (int o = 0; o < static_cast<int>(sqzNumOps); ++o) {
      const auto type = static_cast<sqzDataType_t>(t);
      const auto op = static_cast<sqzRedOp_t>(o);
      std::vector<std::vector<unsigned char>> outs(n);
      runRanks(n, [&](int rank, sqzComm_t& comm) {
        std::vector<unsigned char> in = makeInput(type, op, rank, count, seed);
        outs[rank].assign(in.size(), 0);
        ASSERT_EQ(sqzAllReduceEx(in.data(), outs[rank].data(), count, type, op, plan, nullptr, comm, nullptr),
                  sqzSuccess)
            << sqzGetLastError(comm);
        EXPECT_EQ(algorithmOf(comm), algorithm);
      });
      std::vector<std::vector<unsigned char>> inputs;
      for (int r = 0; r < n; ++r) inputs.push_back(makeInput(type, op, r, count, seed));
      EXPECT_EQ(checkReduction(inputs, outs[0].data(), type, op, count), "")
          << dataTypeName(type) << " " << redOpName(op);
      for (int r = 1; r < n; ++r) EXPECT_TRUE(outs[r] == outs[0]) << dataTypeName(type) << " " << redOpName(op);
    }
  }
}

TEST(ShmAllreduce, EveryTypeAndOp) { expectEveryTypeAndOp(3, 333, "@shm", "shm", 7); }

// The CPUs this process may run on.
std::vector<int> allowedCpus() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

void pinThisThread(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  EXPECT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
}

// Two ranks on `cpus[rank]`, SQZ_SPIN_POLLS=1 (as with more ranks than
// cores) and an unbounded remote spin: the polls their waits spun past
// SQZ_SPIN_POLLS over `calls` 8-byte calls, each of rank 1's `delay` late.
uint64_t pollsSpunByTwoPinnedRanks(const std::vector<int>& cpus, int calls, std::chrono::microseconds delay) {
  ScopedEnv spin("SQZ_SPIN_POLLS", "1");
  ScopedEnv remote("SQZ_SHM_REMOTE_SPIN_POLLS", "1073741824");
  std::atomic<uint64_t> before{0};
  runRanks(2, [&](int rank, sqzComm_t& comm) {
    pinThisThread(cpus[rank]);
    float v[2] = {1.0f, 2.0f};
    // The first call records each rank's CPU in its slot; after the
    // barrier no wait of it is left.
    EXPECT_EQ(sqzAllReduce(v, v, 2, sqzFloat32, sqzSum, comm, nullptr), sqzSuccess) << sqzGetLastError(comm);
    EXPECT_EQ(sqzBarrier(comm), sqzSuccess) << sqzGetLastError(comm);
    if (rank == 0) before = ShmSegment::pollsSpunPastSpinPolls();
    EXPECT_EQ(sqzBarrier(comm), sqzSuccess) << sqzGetLastError(comm);
    for (int i = 0; i < calls; ++i) {
      if (rank == 1) std::this_thread::sleep_for(delay);
      float w[2] = {1.0f + rank, 2.0f};
      EXPECT_EQ(sqzAllReduce(w, w, 2, sqzFloat32, sqzSum, comm, nullptr), sqzSuccess) << sqzGetLastError(comm);
      EXPECT_EQ(w[0], 3.0f);
    }
  });
  return ShmSegment::pollsSpunPastSpinPolls() - before;
}

// With ranks outnumbering cores, a wait may spin on for ranks that last ran
// on another CPU, never for one that last ran on its own (it would keep
// that rank off the CPU): two ranks pinned to one CPU spin not one poll past
// SQZ_SPIN_POLLS, however long the remote spin may last.
TEST(ShmSegment, AWaitNeverSpinsForARankOnItsOwnCpu) {
  const std::vector<int> cpus = allowedCpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_EQ(pollsSpunByTwoPinnedRanks({cpus[0], cpus[0]}, 200, std::chrono::microseconds(0)), 0u);
}

// ... and for ranks on another CPU it does spin (here: rank 1 comes 1 ms
// late to each call, and rank 0 spins for it instead of yielding).
TEST(ShmSegment, AWaitSpinsForRanksOnAnotherCpu) {
  const std::vector<int> cpus = allowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  EXPECT_GT(pollsSpunByTwoPinnedRanks({cpus[0], cpus[1]}, 20, std::chrono::milliseconds(1)), 0u);
}

// The default algorithm follows each call's size, type and whether shm can
// take it, whatever the call before ran (the communicator keeps the last
// exact call's choice): 8 B shm, 64 KiB shm_rs, 12000 B of float32 shm but
// of float64 shm_rs; "@shm" past its slot runs the default without the
// segment (ring), and the same size without a plan shm_rs again.
TEST(ShmAllreduce, TheDefaultFollowsEachCallsShape) {
  const int n = 4;
  struct Call {
    size_t count;
    sqzDataType_t type;
    const char* plan;
    const char* algorithm;
  };
  const std::vector<Call> calls = {
      {2, sqzFloat32, nullptr, "shm"},          {16384, sqzFloat32, nullptr, "shm_rs"},
      {2, sqzFloat32, nullptr, "shm"},          {3000, sqzFloat32, nullptr, "shm"},
      {3000, sqzFloat64, nullptr, "shm_rs"},    {3000, sqzFloat32, nullptr, "shm"},
      {9000, sqzFloat32, nullptr, "shm_rs"},    {9000, sqzFloat32, "@shm", "ring"},
      {9000, sqzFloat32, nullptr, "shm_rs"},    {2, sqzFloat32, nullptr, "shm"}};
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (const Call& c : calls) {
      std::vector<double> v(c.count, 1.0 + rank);
      std::vector<float> f(c.count, 1.0f + rank);
      void* buf = c.type == sqzFloat64 ? static_cast<void*>(v.data()) : static_cast<void*>(f.data());
      EXPECT_EQ(sqzAllReduceEx(buf, buf, c.count, c.type, sqzSum, c.plan, nullptr, comm, nullptr), sqzSuccess)
          << sqzGetLastError(comm);
      EXPECT_EQ(algorithmOf(comm), c.algorithm) << c.count << " elements of type " << c.type;
      EXPECT_EQ(c.type == sqzFloat64 ? v[c.count - 1] : f[c.count - 1], 10.0) << c.count;
    }
  });
}

// Ranks that disagree on the count of a call that goes through the slots
// all fail with the same message, write no output, and keep working: the
// next call runs the same algorithm.
void expectMismatchedCountFailsOnEveryRank(size_t full, const char* plan, const std::string& algorithm) {
  const int n = 4;
  std::vector<std::string> messages(n);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> send(full, 1.0f + rank), recv(full, -7.0f), inplace(full, 3.0f + rank);
    const size_t count = rank == 2 ? full - 1 : full;
    EXPECT_EQ(sqzAllReduceEx(send.data(), recv.data(), count, sqzFloat32, sqzSum, plan, nullptr, comm, nullptr),
              sqzInvalidUsage);
    messages[rank] = sqzGetLastError(comm);
    EXPECT_NE(messages[rank].find("rank 2"), std::string::npos) << messages[rank];
    EXPECT_EQ(sqzAllReduceEx(inplace.data(), inplace.data(), count, sqzFloat32, sqzSum, plan, nullptr, comm, nullptr),
              sqzInvalidUsage);
    size_t written = 0;
    for (size_t i = 0; i < full; ++i) written += recv[i] != -7.0f || inplace[i] != 3.0f + rank;
    EXPECT_EQ(written, 0u) << "rank " << rank << " wrote output elements";
    EXPECT_EQ(sqzAllReduceEx(send.data(), send.data(), full, sqzFloat32, sqzSum, plan, nullptr, comm, nullptr),
              sqzSuccess)
        << sqzGetLastError(comm);
    EXPECT_EQ(send[full - 1], 10.0f);
    EXPECT_EQ(algorithmOf(comm), algorithm);
  });
  for (int r = 1; r < n; ++r)
    EXPECT_EQ(messages[r].substr(messages[r].find(':')), messages[0].substr(messages[0].find(':')));
}

TEST(ShmAllreduce, MismatchedCountFailsOnEveryRankBeforeAnyOutput) {
  expectMismatchedCountFailsOnEveryRank(100, nullptr, "shm");
}

// A rank that never makes the call: the others fail within SQZ_TIMEOUT
// (the first to give up marks the segment, the rest see it), and the late
// rank's own call then fails at once instead of waiting in turn.
void expectARankThatNeverArrivesFailsTheOthers(size_t count, const char* plan) {
  ScopedEnv timeout("SQZ_TIMEOUT", "1");
  const int n = 4;
  std::vector<sqzResult_t> codes(n, sqzSuccess);
  std::vector<double> seconds(n, 0);
  std::atomic<int> done{0};
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> v(count, 1.0f);
    if (rank == 3) {
      while (done.load() < n - 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const auto start = std::chrono::steady_clock::now();
    codes[rank] = sqzAllReduceEx(v.data(), v.data(), v.size(), sqzFloat32, sqzSum, plan, nullptr, comm, nullptr);
    seconds[rank] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (codes[rank] == sqzSuccess) ADD_FAILURE() << "rank " << rank << " succeeded";
    EXPECT_NE(std::string(sqzGetLastError(comm)).find("shared memory"), std::string::npos) << sqzGetLastError(comm);
    ++done;
  });
  for (int r = 0; r < n - 1; ++r) {
    EXPECT_TRUE(codes[r] == sqzTimeout || codes[r] == sqzRemoteError) << "rank " << r << " " << codes[r];
    EXPECT_LT(seconds[r], 1.0 + 5.0) << "rank " << r;
  }
  EXPECT_EQ(codes[3], sqzRemoteError);
  EXPECT_LT(seconds[3], 0.5);
}

TEST(ShmAllreduce, ARankThatNeverArrivesFailsTheOthersWithinTheTimeout) {
  expectARankThatNeverArrivesFailsTheOthers(8, nullptr);
}

// A rank that cannot map the segment, or SQZ_SHM=0: no rank uses it; small
// calls run direct over the transport (forced "@shm" too), mismatches are
// still caught there.
TEST(ShmAllreduce, WithoutTheSegmentEveryRankFallsBackToTheTransport) {
  for (int way = 0; way < 2; ++way) {
    ScopedEnv shm("SQZ_SHM", way == 0 ? nullptr : "0");
    if (way == 0) ShmSegment::refuseNextJoinOfRank(1);
    const int n = 3;
    runRanks(n, [&](int rank, sqzComm_t& comm) {
      for (const char* plan : {static_cast<const char*>(nullptr), "@shm"}) {
        std::vector<float> v(100, 1.0f + rank);
        ASSERT_EQ(sqzAllReduceEx(v.data(), v.data(), v.size(), sqzFloat32, sqzSum, plan, nullptr, comm, nullptr),
                  sqzSuccess)
            << sqzGetLastError(comm);
        EXPECT_EQ(v[99], 6.0f);
        EXPECT_EQ(algorithmOf(comm), "direct") << "way " << way << " plan " << (plan ? plan : "none");
      }
      std::vector<float> v(100, 1.0f);
      EXPECT_EQ(sqzAllReduce(v.data(), v.data(), rank == 0 ? 50 : 100, sqzFloat32, sqzSum, comm, nullptr),
                sqzInvalidUsage);
    });
  }
}

// The medium-size algorithm (collectives/shm_rs_allreduce.h), forced with
// "@shm_rs": exact against the fp64 reference, bitwise identical on every
// rank, at odd sizes whose shares differ, up to a full large slot, and past
// it in slot-sized pieces (the last one short).
class ShmRsAllreduceValues : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(ShmRsAllreduceValues, ExactAgainstTheFp64ReferenceAndIdenticalOnEveryRank) {
  const auto [n, inPlace] = GetParam();
  const size_t slot = ShmSegment::largeSlotBytes(n) / sizeof(float);
  const std::vector<size_t> counts = {1, 2, 7, 129, 4099, 100003, 262147, slot, slot + 1, 2 * slot + 4099};
  std::vector<std::vector<std::vector<unsigned char>>> results(counts.size(), std::vector<std::vector<unsigned char>>(n));
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (size_t k = 0; k < counts.size(); ++k) {
      std::vector<unsigned char> in = makeInput(sqzFloat32, sqzSum, rank, counts[k], 200 + k);
      std::vector<unsigned char> out(in.size(), 0xee);
      void* recv = inPlace ? in.data() : out.data();
      EXPECT_EQ(sqzAllReduceEx(in.data(), recv, counts[k], sqzFloat32, sqzSum, "@shm_rs", nullptr, comm, nullptr),
                sqzSuccess)
          << sqzGetLastError(comm);
      EXPECT_EQ(algorithmOf(comm), "shm_rs") << "count " << counts[k];
      const auto* r = static_cast<const unsigned char*>(recv);
      results[k][rank].assign(r, r + counts[k] * sizeof(float));
    }
  });
  for (size_t k = 0; k < counts.size(); ++k) {
    std::vector<std::vector<unsigned char>> inputs;
    for (int r = 0; r < n; ++r) inputs.push_back(makeInput(sqzFloat32, sqzSum, r, counts[k], 200 + k));
    ASSERT_EQ(results[k][0].size(), counts[k] * sizeof(float));
    EXPECT_EQ(checkReduction(inputs, results[k][0].data(), sqzFloat32, sqzSum, counts[k]), "") << "count " << counts[k];
    for (int r = 1; r < n; ++r)
      EXPECT_TRUE(results[k][r] == results[k][0]) << "rank " << r << " differs from rank 0 at count " << counts[k];
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, ShmRsAllreduceValues, ::testing::Combine(::testing::Values(3, 4), ::testing::Bool()),
                         [](const auto& info) {
                           return "n" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_inplace" : "_outofplace");
                         });

TEST(ShmRsAllreduce, EveryTypeAndOp) { expectEveryTypeAndOp(4, 10007, "@shm_rs", "shm_rs", 9); }

// The same through the large slots, in one piece and in several (where the
// call is agreed before its first piece moves).
TEST(ShmRsAllreduce, MismatchedCountFailsOnEveryRankBeforeAnyOutput) {
  expectMismatchedCountFailsOnEveryRank(50000, "@shm_rs", "shm_rs");
  expectMismatchedCountFailsOnEveryRank(ShmSegment::largeSlotBytes(4) / sizeof(float) + 5, "@shm_rs", "shm_rs");
}

// The same through the large slots.
TEST(ShmRsAllreduce, ARankThatNeverArrivesFailsTheOthersWithinTheTimeout) {
  expectARankThatNeverArrivesFailsTheOthers(50000, "@shm_rs");
}

// A rank inside sqzJoin: the others' shm_rs calls read its part as zeros,
// not what its slot still holds from the call all four made before (a join
// path that reused the stale slot would add 2 to every sum), and the joined
// rank is done after its one exchange. EXPECT only: a rank thread that
// returned early would leave the others waiting.
void expectARankInsideJoinAddsZeros(size_t count) {
  const int n = 4;
  std::vector<std::vector<size_t>> wrong(n, std::vector<size_t>(4, 0));
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> v(count, 1.0f + rank);
    EXPECT_EQ(sqzAllReduceEx(v.data(), v.data(), count, sqzFloat32, sqzSum, "@shm_rs", nullptr, comm, nullptr),
              sqzSuccess)
        << sqzGetLastError(comm);
    for (size_t i = 0; i < count; ++i) wrong[rank][0] += v[i] != 10.0f;
    if (rank != 1) {
      for (int call = 1; call <= 3; ++call) {
        std::vector<float> w(count, 1.0f + rank);
        EXPECT_EQ(sqzAllReduceEx(w.data(), w.data(), count, sqzFloat32, sqzSum, "@shm_rs", nullptr, comm, nullptr),
                  sqzSuccess)
            << sqzGetLastError(comm);
        EXPECT_EQ(algorithmOf(comm), "shm_rs");
        for (size_t i = 0; i < count; ++i) wrong[rank][call] += w[i] != 1.0f + 3.0f + 4.0f;
      }
    }
    int last = -1;
    EXPECT_EQ(sqzJoin(comm, &last), sqzSuccess) << sqzGetLastError(comm);
  });
  for (int r = 0; r < n; ++r)
    for (int call = 0; call <= 3; ++call)
      EXPECT_EQ(wrong[r][call], 0u) << "rank " << r << " call " << call << ": elements off the expected sum";
}

TEST(ShmRsAllreduce, ARankInsideJoinAddsZerosNotItsStaleSlot) { expectARankInsideJoinAddsZeros(100003); }

// Past a slot, the joined rank runs the pieces too, writing zeros into its
// slot (the default at every size above kShmPreferredMaxBytes is shm_rs,
// which it runs without a plan).
TEST(ShmRsAllreduce, ARankInsideJoinTakesPartInEveryPieceWithZeros) {
  expectARankInsideJoinAddsZeros(ShmSegment::largeSlotBytes(4) / sizeof(float) + 4099);
}

}  // namespace
}  // namespace sqz::test
