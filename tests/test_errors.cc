// Bad input gets a clear status and message, never a crash or a hang; a
// rejected call leaves the communicator working.
#include <gtest/gtest.h>

#include <cmath>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "harness/rank_threads.h"

namespace sqz::test {
namespace {

std::string lastError(sqzComm_t comm) { return sqzGetLastError(comm); }

// After a failure, a correct call on the same communicator still works.
void expectStillWorks(int rank, int n, sqzComm_t comm) {
  std::vector<int32_t> v(5, rank);
  ASSERT_EQ(sqzAllReduce(v.data(), v.data(), v.size(), sqzInt32, sqzSum, comm, nullptr), sqzSuccess)
      << lastError(comm);
  for (int32_t x : v) EXPECT_EQ(x, n * (n - 1) / 2);
}

// A broken internal invariant says where it broke, and is not the user's fault.
TEST(Errors, InternalChecksCarryFileAndLine) {
  const int line = __LINE__ + 2;
  try {
    SQZ_CHECK(1 + 1 == 3, "arithmetic %s", "drifted");
    ADD_FAILURE() << "SQZ_CHECK passed a false condition";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzInternalError);
    const std::string what = e.what();
    EXPECT_NE(what.find("tests/test_errors.cc:" + std::to_string(line)), std::string::npos) << what;
    EXPECT_NE(what.find("1 + 1 == 3"), std::string::npos) << what;
    EXPECT_NE(what.find("arithmetic drifted"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(SQZ_CHECK(1 + 1 == 2, "never"));
}

TEST(Errors, InvalidArgumentsAreRejectedLocally) {
  const int n = 3;
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> buf(16, 1.0f);
    EXPECT_EQ(sqzAllReduce(nullptr, buf.data(), 16, sqzFloat32, sqzSum, comm, nullptr), sqzInvalidArgument);
    EXPECT_NE(lastError(comm).find("sendbuff is NULL"), std::string::npos) << lastError(comm);
    EXPECT_EQ(sqzAllReduce(buf.data(), nullptr, 16, sqzFloat32, sqzSum, comm, nullptr), sqzInvalidArgument);
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), 16, static_cast<sqzDataType_t>(12), sqzSum, comm, nullptr),
              sqzInvalidArgument);
    EXPECT_NE(lastError(comm).find("datatype"), std::string::npos);
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), 16, sqzFloat32, static_cast<sqzRedOp_t>(7), comm, nullptr),
              sqzInvalidArgument);
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), 16, sqzFloat32, static_cast<sqzRedOp_t>(sqzNumOps), comm,
                           nullptr),
              sqzInvalidArgument);
    // (Invalid values inside the enums' range: C++ callers may not pass others.)
    // Misaligned: a float buffer starting one byte in.
    char* raw = reinterpret_cast<char*>(buf.data()) + 1;
    EXPECT_EQ(sqzAllReduce(raw, raw, 4, sqzFloat32, sqzSum, comm, nullptr), sqzInvalidArgument);
    EXPECT_NE(lastError(comm).find("aligned"), std::string::npos) << lastError(comm);
    // Partly overlapping send and receive buffers.
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data() + 1, 8, sqzFloat32, sqzSum, comm, nullptr), sqzInvalidArgument);
    // Absurd count.
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), SIZE_MAX / 2, sqzFloat32, sqzSum, comm, nullptr),
              sqzInvalidArgument);
    // Broadcast root out of range.
    EXPECT_EQ(sqzBroadcast(buf.data(), buf.data(), 4, sqzFloat32, n, comm, nullptr), sqzInvalidArgument);
    // Unsupported compression spec.
    EXPECT_EQ(sqzCommSetCompression(comm, "zstd"), sqzInvalidArgument);
    EXPECT_EQ(sqzCommSetCompression(comm, nullptr), sqzInvalidArgument);
    // Unknown optimizer kind, momentum outside [0, 1) or NaN, NULL.
    EXPECT_EQ(sqzCommSetOptimizer(comm, "lamb", 0.9), sqzInvalidArgument);
    EXPECT_EQ(sqzCommSetOptimizer(comm, "adam", 1.0), sqzInvalidArgument);
    EXPECT_EQ(sqzCommSetOptimizer(comm, "sgd", -0.1), sqzInvalidArgument);
    EXPECT_EQ(sqzCommSetOptimizer(comm, "sgd", std::nan("")), sqzInvalidArgument);
    EXPECT_EQ(sqzCommSetOptimizer(comm, nullptr, 0.9), sqzInvalidArgument);
    // Every rank sets the same (valid) values: calls keep working.
    EXPECT_EQ(sqzCommSetOptimizer(comm, "adam", 0.9), sqzSuccess);
    // count == 0 with NULL buffers is a successful no-op.
    EXPECT_EQ(sqzAllReduce(nullptr, nullptr, 0, sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    expectStillWorks(rank, n, comm);
  });
}

TEST(Errors, NullAndDestroyedCommunicators) {
  float x = 1;
  EXPECT_EQ(sqzAllReduce(&x, &x, 1, sqzFloat32, sqzSum, nullptr, nullptr), sqzInvalidArgument);
  EXPECT_NE(std::string(sqzGetLastError(nullptr)).find("comm is NULL"), std::string::npos);
  int v = 0;
  EXPECT_EQ(sqzCommCount(nullptr, &v), sqzInvalidArgument);
  EXPECT_EQ(sqzCommDestroy(nullptr), sqzInvalidArgument);
  EXPECT_EQ(sqzGetVersion(nullptr), sqzInvalidArgument);
  EXPECT_EQ(sqzGetVersion(&v), sqzSuccess);
  EXPECT_EQ(v, SQZ_VERSION_CODE);

  sqzComm_t stale = nullptr;
  runRanks(1, [&](int, sqzComm_t& comm) {
    stale = comm;
    ASSERT_EQ(sqzCommDestroy(comm), sqzSuccess);
    comm = nullptr;
  });
  EXPECT_EQ(sqzAllReduce(&x, &x, 1, sqzFloat32, sqzSum, stale, nullptr), sqzInvalidArgument);
  EXPECT_EQ(sqzCommDestroy(stale), sqzInvalidArgument);

  sqzUniqueId bogus;
  std::memset(&bogus, 0x5a, sizeof bogus);
  sqzComm_t comm = nullptr;
  EXPECT_EQ(sqzCommInitRank(&comm, 2, bogus, 0), sqzInvalidArgument);
  EXPECT_NE(std::string(sqzGetLastError(nullptr)).find("not a sqz unique id"), std::string::npos);
  sqzUniqueId id;
  ASSERT_EQ(sqzGetUniqueId(&id), sqzSuccess);
  EXPECT_EQ(sqzCommInitRank(&comm, 2, id, 2), sqzInvalidArgument);
  EXPECT_EQ(sqzCommInitRank(&comm, 0, id, 0), sqzInvalidArgument);
  EXPECT_EQ(sqzCommInitRank(nullptr, 1, id, 0), sqzInvalidArgument);
  for (int r = 0; r < sqzNumResults; ++r) EXPECT_STRNE(sqzGetErrorString(static_cast<sqzResult_t>(r)), "");
}

// The device path's entry points on a machine (or build) without it: clear
// codes, no crash; gather runs on host buffers when a plan names it, a
// codec it cannot carry is refused on every rank, and the communicator
// keeps working.
TEST(Errors, DevicePathEntryPointsWithoutDeviceBuffers) {
  sqzComm_t none = nullptr;
  EXPECT_EQ(sqzCommInitFromNccl(&none, nullptr), sqzInvalidArgument);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(sqzCommInitFromNccl(nullptr, nullptr), sqzInvalidArgument);
  sqzResult_t async = sqzInternalError;
  EXPECT_EQ(sqzCommGetAsyncError(nullptr, &async), sqzInvalidArgument);
  runRanks(2, [&](int rank, sqzComm_t& comm) {
    sqzResult_t err = sqzInternalError;
    EXPECT_EQ(sqzCommGetAsyncError(comm, &err), sqzSuccess);
    EXPECT_EQ(err, sqzSuccess);
    EXPECT_EQ(sqzCommGetAsyncError(comm, nullptr), sqzInvalidArgument);
    std::vector<float> x(1 << 16, 1.0f + rank);
    std::vector<float> sum(x.size());
    EXPECT_EQ(sqzAllReduceEx(x.data(), sum.data(), x.size(), sqzFloat32, sqzSum, "@gather:q4", nullptr, comm, nullptr),
              sqzSuccess)
        << sqzGetLastError(comm);
    EXPECT_EQ(sum[0], 3.0f);  // constant blocks encode exactly
    EXPECT_EQ(sqzAllReduceEx(x.data(), x.data(), x.size(), sqzFloat32, sqzSum, "@gather:randk:0.1", nullptr, comm,
                             nullptr),
              sqzInvalidArgument);
    expectStillWorks(rank, 2, comm);
  });
}

// Ranks that disagree on count, type or op all get sqzInvalidUsage with the
// same message, promptly, and the communicator keeps working.
TEST(Errors, MismatchedCallsAreDetectedOnEveryRank) {
  const int n = 4;
  std::vector<std::string> messages(n);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> buf(2000, 1.0f);
    auto start = std::chrono::steady_clock::now();
    size_t count = rank == 2 ? 1000 : 2000;
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), count, sqzFloat32, sqzSum, comm, nullptr), sqzInvalidUsage);
    messages[rank] = lastError(comm);
    EXPECT_NE(messages[rank].find("rank 2"), std::string::npos) << messages[rank];
    sqzDataType_t type = rank == 1 ? sqzInt32 : sqzFloat32;
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), 100, type, sqzSum, comm, nullptr), sqzInvalidUsage);
    sqzRedOp_t op = rank == 3 ? sqzMax : sqzSum;
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), 100, sqzFloat32, op, comm, nullptr), sqzInvalidUsage);
    EXPECT_EQ(sqzBroadcast(buf.data(), buf.data(), 10, sqzFloat32, rank == 0 ? 1 : 0, comm, nullptr),
              sqzInvalidUsage);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    expectStillWorks(rank, n, comm);
  });
  for (int r = 1; r < n; ++r) EXPECT_EQ(messages[r].substr(messages[r].find(':')), messages[0].substr(messages[0].find(':')));
}

// What auto assumes of the optimizer (sqzCommSetOptimizer) is part of the
// settings every call's header carries: ranks that set different kinds or
// momenta fail their calls on every rank; setting them alike again heals.
TEST(Errors, OptimizerSettingsMustAgree) {
  const int n = 3;
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> buf(64, 1.0f);
    ASSERT_EQ(sqzCommSetOptimizer(comm, rank == 1 ? "sgd" : "adam", 0.9), sqzSuccess);
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr), sqzInvalidUsage);
    ASSERT_EQ(sqzCommSetOptimizer(comm, "adam", rank == 2 ? 0.8 : 0.9), sqzSuccess);
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr), sqzInvalidUsage);
    ASSERT_EQ(sqzCommSetOptimizer(comm, "adam", 0.9), sqzSuccess);
    expectStillWorks(rank, n, comm);
  });
}

// A call tag (sqzCommSetCallTag) is compared like count and type: ranks
// whose tags differ fail that call on every rank, whatever the collective;
// equal tags pass; the tag is consumed by the next call, even one that fails
// before its header goes out.
TEST(Errors, CallTagsAreComparedAndConsumed) {
  const int n = 3;
  std::vector<std::string> messages(n);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> buf(64, 1.0f), all(64 * n);
    ASSERT_EQ(sqzCommSetCallTag(comm, rank == 1 ? 7 : 9), sqzSuccess);
    EXPECT_EQ(sqzAllReduce(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr), sqzInvalidUsage);
    messages[rank] = lastError(comm);
    EXPECT_NE(messages[rank].find("tag#0000000000000009, rank 1 called allreduce count=64 type=float op=sum root=-1 "
                                  "compression#"),
              std::string::npos)
        << messages[rank];
    ASSERT_EQ(sqzCommSetCallTag(comm, rank == 2 ? 1 : 0), sqzSuccess);
    EXPECT_EQ(sqzBroadcast(buf.data(), buf.data(), buf.size(), sqzFloat32, 0, comm, nullptr), sqzInvalidUsage);
    ASSERT_EQ(sqzCommSetCallTag(comm, rank + 1), sqzSuccess);
    EXPECT_EQ(sqzAllGather(buf.data(), all.data(), buf.size(), sqzFloat32, comm, nullptr), sqzInvalidUsage);
    ASSERT_EQ(sqzCommSetCallTag(comm, rank + 1), sqzSuccess);
    EXPECT_EQ(sqzBarrier(comm), sqzInvalidUsage);
    ASSERT_EQ(sqzCommSetCallTag(comm, 0x5eed), sqzSuccess);
    EXPECT_EQ(sqzBarrier(comm), sqzSuccess) << lastError(comm);
    // Consumed by a call that fails locally (on every rank): the next call has none.
    ASSERT_EQ(sqzCommSetCallTag(comm, rank + 1), sqzSuccess);
    EXPECT_EQ(sqzAllReduce(nullptr, buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr), sqzInvalidArgument);
    expectStillWorks(rank, n, comm);
  });
  for (int r = 1; r < n; ++r) EXPECT_EQ(messages[r].substr(messages[r].find(':')), messages[0].substr(messages[0].find(':')));
  EXPECT_EQ(sqzCommSetCallTag(nullptr, 1), sqzInvalidArgument);
}

TEST(Errors, FeaturesSayWhatTheBuildServes) {
  EXPECT_EQ(sqzGetFeatures(nullptr), sqzInvalidArgument);
  int features = -1;
  ASSERT_EQ(sqzGetFeatures(&features), sqzSuccess);
#ifdef SQZ_HAVE_CUDA
  EXPECT_EQ(features & SQZ_FEATURE_CUDA, SQZ_FEATURE_CUDA);
#else
  EXPECT_EQ(features & SQZ_FEATURE_CUDA, 0);
#endif
}

// A small exact call carries its header with its data (one message), a
// large one sends the header alone first: ranks whose calls straddle that
// line, or differ in a small call's type, still all fail with the same
// message, and no rank writes any output (in place or out of place).
TEST(Errors, MismatchesAcrossTheHeaderCarryLineWriteNoOutput) {
  const int n = 4;
  const size_t big = 1 << 20;  // 4 MiB of floats: above any carried payload
  std::vector<std::string> messages(n);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> send(big, 1.0f + rank), recv(big, -7.0f), inplace(big, 3.0f + rank);
    const size_t count = rank == 1 ? big : 100;
    EXPECT_EQ(sqzAllReduce(send.data(), recv.data(), count, sqzFloat32, sqzSum, comm, nullptr), sqzInvalidUsage);
    messages[rank] = lastError(comm);
    EXPECT_NE(messages[rank].find("rank 1"), std::string::npos) << messages[rank];
    EXPECT_EQ(sqzAllReduce(inplace.data(), inplace.data(), count, sqzFloat32, sqzSum, comm, nullptr),
              sqzInvalidUsage);
    const sqzDataType_t type = rank == 3 ? sqzInt32 : sqzFloat32;
    EXPECT_EQ(sqzAllReduce(send.data(), recv.data(), 100, type, sqzSum, comm, nullptr), sqzInvalidUsage);
    EXPECT_EQ(sqzAllReduce(inplace.data(), inplace.data(), 100, type, sqzSum, comm, nullptr), sqzInvalidUsage);
    for (size_t i = 0; i < big; ++i) {
      ASSERT_EQ(recv[i], -7.0f) << "rank " << rank << " wrote output element " << i;
      ASSERT_EQ(inplace[i], 3.0f + rank) << "rank " << rank << " wrote in-place element " << i;
    }
    expectStillWorks(rank, n, comm);
  });
  for (int r = 1; r < n; ++r) EXPECT_EQ(messages[r].substr(messages[r].find(':')), messages[0].substr(messages[0].find(':')));
}

// A rank that aborts (dies) mid-job: the others fail within SQZ_TIMEOUT
// with a remote error or a timeout, never hang.
TEST(Errors, DeadPeerFailsOthersWithinTimeout) {
  ScopedEnv timeout("SQZ_TIMEOUT", "4");
  const int n = 3;
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> buf(1 << 18, 1.0f);
    ASSERT_EQ(sqzAllReduce(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    if (rank == 1) {
      ASSERT_EQ(sqzCommAbort(comm), sqzSuccess);
      comm = nullptr;
      return;
    }
    auto start = std::chrono::steady_clock::now();
    sqzResult_t r = sqzAllReduce(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, comm, nullptr);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(r == sqzRemoteError || r == sqzTimeout) << "got " << r << ": " << lastError(comm);
    EXPECT_LT(secs, 4.0 + 3.0);
    // The communicator is now unusable, and says so instead of hanging.
    EXPECT_NE(sqzAllReduce(buf.data(), buf.data(), 8, sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    EXPECT_EQ(sqzCommAbort(comm), sqzSuccess);
    comm = nullptr;
  });
}

}  // namespace
}  // namespace sqz::test
