// Exact allreduce over threads-as-ranks: every type and op against an exact
// reference, rank counts 1..8, odd sizes, in place, and bitwise-identical
// outputs on all ranks.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "common/dtype.h"
#include "harness/rank_threads.h"
#include "harness/reference.h"

namespace sqz::test {
namespace {

// Runs one allreduce on n ranks and checks correctness and bitwise identity.
// plan: a forced plan name ("@ring"), or null for the communicator's policy.
void checkAllreduce(int n, sqzDataType_t type, sqzRedOp_t op, const std::vector<size_t>& counts, bool inPlace,
                    const char* plan = nullptr) {
  std::vector<std::vector<std::vector<unsigned char>>> results(counts.size(),
                                                               std::vector<std::vector<unsigned char>>(n));
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (size_t k = 0; k < counts.size(); ++k) {
      size_t count = counts[k];
      std::vector<unsigned char> in = makeInput(type, op, rank, count, k + 1);
      std::vector<unsigned char> out(in.size() + 1);  // +1 so data() is never null
      const void* send = in.data();
      void* recv = inPlace ? static_cast<void*>(in.data()) : static_cast<void*>(out.data());
      ASSERT_EQ(plan ? sqzAllReduceEx(send, recv, count, type, op, plan, nullptr, comm, nullptr)
                     : sqzAllReduce(send, recv, count, type, op, comm, nullptr),
                sqzSuccess)
          << "rank " << rank << " count " << count << ": " << sqzGetLastError(comm);
      const unsigned char* r = static_cast<const unsigned char*>(recv);
      results[k][rank].assign(r, r + count * dataTypeSize(type));
    }
  });
  for (size_t k = 0; k < counts.size(); ++k) {
    std::vector<std::vector<unsigned char>> inputs;
    for (int r = 0; r < n; ++r) inputs.push_back(makeInput(type, op, r, counts[k], k + 1));
    ASSERT_EQ(results[k][0].size(), counts[k] * dataTypeSize(type));
    std::string err = checkReduction(inputs, results[k][0].data(), type, op, counts[k]);
    EXPECT_EQ(err, "") << "count " << counts[k];
    for (int r = 1; r < n; ++r)
      EXPECT_TRUE(results[k][r] == results[k][0]) << "rank " << r << " differs from rank 0 at count " << counts[k];
  }
}

class AllreduceSizes : public ::testing::TestWithParam<int> {};

// float32 sum across the acceptance sizes: 0, 1, 7, 1023, (1<<20)+3.
TEST_P(AllreduceSizes, Float32SumMatchesFp64Reference) {
  checkAllreduce(GetParam(), sqzFloat32, sqzSum, {0, 1, 7, 1023, (1u << 20) + 3}, false);
}

TEST_P(AllreduceSizes, InPlace) { checkAllreduce(GetParam(), sqzFloat32, sqzSum, {7, 100003}, true); }

INSTANTIATE_TEST_SUITE_P(Ranks, AllreduceSizes, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8),
                         [](const auto& info) { return "n" + std::to_string(info.param); });

class AllreduceTypes : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

// Every type x op on the direct path (small) and the ring path (large).
TEST_P(AllreduceTypes, MatchesReference) {
  auto [n, type, op] = GetParam();
  checkAllreduce(n, static_cast<sqzDataType_t>(type), static_cast<sqzRedOp_t>(op), {1, 7, 1023, 100003}, false);
}

INSTANTIATE_TEST_SUITE_P(
    All, AllreduceTypes,
    ::testing::Combine(::testing::Values(3, 4), ::testing::Range(0, static_cast<int>(sqzNumTypes)),
                       ::testing::Range(0, static_cast<int>(sqzNumOps))),
    [](const auto& info) {
      return "n" + std::to_string(std::get<0>(info.param)) + "_" +
             dataTypeName(static_cast<sqzDataType_t>(std::get<1>(info.param))) + "_" +
             redOpName(static_cast<sqzRedOp_t>(std::get<2>(info.param)));
    });

// Small chunks force many pipelined chunks per ring step.
TEST(AllreduceChunks, ManySmallChunks) {
  ScopedEnv chunk("SQZ_CHUNK_BYTES", "4096");
  checkAllreduce(5, sqzFloat32, sqzSum, {1, 7, 4099, 262147}, false, "@ring");
  checkAllreduce(3, sqzBfloat16, sqzAvg, {5, 70001}, false, "@ring");
}

// "@ring" and "@direct" run the exact algorithm they name at every size
// (sqzCallInfo.plan of a call, forced, reproduces it); "@shm" where a slot
// holds the buffer, else the default without it. Without a plan the size
// decides: shm up to kShmPreferredMaxBytes (threads-as-ranks share a node),
// shm_rs above (in pieces past a large slot).
TEST(AllreducePlans, RingAndDirectForceTheirAlgorithm) {
  const int n = 3;
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    struct Case {
      const char* spec;
      size_t count;
      const char* ran;
    };
    for (Case c : {Case{"@ring", 5, "ring"}, Case{"@ring", 100003, "ring"}, Case{"@direct", 5, "direct"},
                   Case{"@direct", 100003, "direct"}, Case{"@shm", 5, "shm"}, Case{"@shm", 100003, "ring"},
                   Case{nullptr, 5, "shm"}, Case{nullptr, 100003, "shm_rs"}, Case{"@shm_rs", 100003, "shm_rs"},
                   Case{nullptr, 2200003, "shm_rs"}}) {
      std::vector<int32_t> v(c.count, rank + 1);
      ASSERT_EQ(c.spec ? sqzAllReduceEx(v.data(), v.data(), v.size(), sqzInt32, sqzSum, c.spec, nullptr, comm, nullptr)
                       : sqzAllReduce(v.data(), v.data(), v.size(), sqzInt32, sqzSum, comm, nullptr),
                sqzSuccess)
          << sqzGetLastError(comm);
      for (size_t i = 0; i < v.size(); i += 997) ASSERT_EQ(v[i], n * (n + 1) / 2) << i;
      sqzCallInfo info;
      ASSERT_EQ(sqzGetCallInfo(comm, &info), sqzSuccess);
      const std::string want = c.ran;
      EXPECT_EQ(info.algorithm, want) << (c.spec ? c.spec : "none") << " count " << c.count;
      EXPECT_EQ(info.plan, "@" + want);
      // What went out tells them apart: the whole buffer to each peer, the
      // ring's 2(N-1)/N of it, or the buffer once into this rank's slot.
      const size_t bytes = c.count * sizeof(int32_t);
      const size_t expected = want == "direct" ? bytes * (n - 1) : want == "shm" || want == "shm_rs" ? bytes : 2 * bytes * (n - 1) / n;
      EXPECT_EQ(info.wireBytes, expected) << want << " count " << c.count;
    }
    // The communicator's policy forces it too, for every type and op.
    ASSERT_EQ(sqzCommSetCompression(comm, "@direct"), sqzSuccess);
    std::vector<double> big(100003, 2.0 + rank);
    ASSERT_EQ(sqzAllReduce(big.data(), big.data(), big.size(), sqzFloat64, sqzMax, comm, nullptr), sqzSuccess);
    EXPECT_EQ(big[100002], 2.0 + (n - 1));
    sqzCallInfo info;
    sqzGetCallInfo(comm, &info);
    EXPECT_STREQ(info.algorithm, "direct");
  });
}

// Consecutive calls and alternating algorithms keep their messages apart.
TEST(AllreduceSequence, ManyCallsBackToBack) {
  const int n = 4;
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (int it = 0; it < 200; ++it) {
      size_t count = (it % 3 == 0) ? 50000 : 3 + it;
      std::vector<int32_t> v(count, rank + it);
      ASSERT_EQ(sqzAllReduce(v.data(), v.data(), count, sqzInt32, sqzSum, comm, nullptr), sqzSuccess);
      int32_t expect = n * it + n * (n - 1) / 2;
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(v[i], expect) << "iteration " << it;
    }
  });
}

}  // namespace
}  // namespace sqz::test
