// Device-buffer allreduce (issue 6), through the public API only: threads
// as ranks, each with its own communicator and CUDA stream on device 0,
// over SQZ_TRANSPORT=ucx (encoded payloads staged through host memory, so
// several ranks share the one GPU); SQZ_TRANSPORT=nccl and an adopted
// ncclComm with one rank; stream semantics (the host returns before the GPU
// has run the calls). main() (gpu_main.cc) skips the whole binary with exit
// code 77 when there is no CUDA device.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "common/dtype.h"
#include "gpu/gpu_check.h"
#include "gpu/spin_kernel.h"
#include "harness/rank_threads.h"
#include "harness/reference.h"

#ifdef SQZ_GPU_TESTS_HAVE_NCCL
#include <nccl.h>
#endif

namespace sqz::test {
namespace {

#define CUDA_OK(call)                                                          \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    ASSERT_EQ(e_, cudaSuccess) << #call << ": " << cudaGetErrorString(e_);     \
  } while (0)

// A stream per rank thread, on device 0.
class RankStream {
 public:
  RankStream() {
    cudaSetDevice(0);
    cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
  }
  ~RankStream() { cudaStreamDestroy(stream_); }
  cudaStream_t get() const { return stream_; }
  sqzCudaStream_t sqz() const { return reinterpret_cast<sqzCudaStream_t>(stream_); }

 private:
  cudaStream_t stream_ = nullptr;
};

// runRanks, with an exception in a rank thread (a failed cudaMalloc, say)
// reported as a test failure instead of terminating the process.
void runDeviceRanks(int n, const std::function<void(int rank, sqzComm_t& comm)>& body) {
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    try {
      body(rank, comm);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "rank " << rank << ": " << e.what();
    }
  });
}

// The first asynchronous error of comm, "" if none.
std::string asyncError(sqzComm_t comm) {
  sqzResult_t err = sqzSuccess;
  sqzResult_t r = sqzCommGetAsyncError(comm, &err);
  if (r != sqzSuccess) return std::string("sqzCommGetAsyncError failed: ") + sqzGetErrorString(r);
  if (err != sqzSuccess) return std::string("async error: ") + sqzGetErrorString(err) + " (" + sqzGetLastError(comm) + ")";
  return "";
}

// Error-feedback states of one rank, destroyed together at the end of the
// rank's body (before its communicator): each call gets a state of its own
// that stays alive, so no state is created at a destroyed one's address.
class RankStates {
 public:
  explicit RankStates(sqzComm_t comm) : comm_(comm) {}
  ~RankStates() {
    for (sqzState_t s : states_) sqzStateDestroy(s);
  }
  sqzState_t make(size_t count, sqzDataType_t type) {
    sqzState_t s = nullptr;
    if (sqzStateCreate(comm_, count, type, &s) != sqzSuccess) return nullptr;
    states_.push_back(s);
    return s;
  }

 private:
  sqzComm_t comm_;
  std::vector<sqzState_t> states_;
};

// One device allreduce of rank's makeInput data with a fresh error-feedback
// state: returns the host copy of the result and the call's info.
void deviceAllReduce(sqzComm_t comm, RankStates& states, const RankStream& stream, const std::string& spec,
                     sqzDataType_t type, sqzRedOp_t op, const std::vector<unsigned char>& input, size_t count,
                     std::vector<unsigned char>* out, sqzCallInfo* info) {
  const size_t bytes = count * dataTypeSize(type);
  DeviceBuffer send(bytes, stream.get()), recv(bytes, stream.get());
  send.upload(input.data(), bytes, stream.get());
  sqzState_t state = states.make(count, type);
  ASSERT_NE(state, nullptr) << sqzGetLastError(comm);
  sqzResult_t r = sqzAllReduceEx(send.get(), recv.get(), count, type, op, spec.c_str(), state, comm, stream.sqz());
  ASSERT_EQ(r, sqzSuccess) << spec << ": " << sqzGetErrorString(r) << " (" << sqzGetLastError(comm) << ")";
  sqzGetCallInfo(comm, info);
  out->assign(bytes, 0);
  recv.download(out->data(), bytes, stream.get());
  ASSERT_EQ(asyncError(comm), "");
}

const size_t kSizes[] = {1, 1023, 100003, (size_t{1} << 20) + 3};
const sqzDataType_t kTypes[] = {sqzFloat32, sqzFloat16, sqzBfloat16};

struct Case {
  sqzDataType_t type;
  sqzRedOp_t op;
  size_t count;
};

// Every size and type with sum, and float32 avg at two sizes.
std::vector<Case> sweepCases() {
  std::vector<Case> cases;
  for (sqzDataType_t t : kTypes)
    for (size_t c : kSizes) cases.push_back({t, sqzSum, c});
  cases.push_back({sqzFloat32, sqzAvg, 100003});
  cases.push_back({sqzBfloat16, sqzAvg, 1023});
  return cases;
}

class DeviceCodecs : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(DeviceCodecs, WithinCodecBoundAndIdenticalOnAllRanks) {
  const int n = std::get<0>(GetParam());
  const std::string spec = std::get<1>(GetParam());
  const std::vector<Case> cases = sweepCases();
  std::vector<std::vector<std::vector<unsigned char>>> outputs(cases.size(),
                                                               std::vector<std::vector<unsigned char>>(n));
  std::vector<std::vector<sqzCallInfo>> infos(cases.size(), std::vector<sqzCallInfo>(n));
  runDeviceRanks(n, [&](int rank, sqzComm_t& comm) {
    RankStream stream;
    RankStates states(comm);
    for (size_t c = 0; c < cases.size(); ++c) {
      SCOPED_TRACE(std::string(dataTypeName(cases[c].type)) + " " + redOpName(cases[c].op) + " count " +
                   std::to_string(cases[c].count) + " rank " + std::to_string(rank));
      std::vector<unsigned char> input = makeInput(cases[c].type, sqzSum, rank, cases[c].count, 11 + c);
      deviceAllReduce(comm, states, stream, spec, cases[c].type, cases[c].op, input, cases[c].count,
                      &outputs[c][rank], &infos[c][rank]);
      if (::testing::Test::HasFatalFailure()) return;
    }
  });
  if (HasFatalFailure()) return;
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    SCOPED_TRACE(spec + " " + dataTypeName(k.type) + " " + redOpName(k.op) + " count " + std::to_string(k.count) +
                 " n " + std::to_string(n));
    std::vector<std::vector<unsigned char>> inputs(n);
    for (int r = 0; r < n; ++r) inputs[r] = makeInput(k.type, sqzSum, r, k.count, 11 + c);
    for (int r = 1; r < n; ++r)
      ASSERT_EQ(outputs[c][r], outputs[c][0]) << "rank " << r << " differs from rank 0";
    const sqzCallInfo& info = infos[c][0];
    EXPECT_EQ(checkDevicePlan(info), "") << "plan " << info.plan;
    if (spec != "auto") {
      EXPECT_TRUE(info.exact || spec == info.codec) << "asked for " << spec << ", ran " << info.codec;
    }
    if (spec == "none") {
      EXPECT_EQ(info.exact, 1);
    }
    if (!info.exact && n > 1 && k.count >= 100000) {
      // gather switches to the exact ring before it would send more.
      EXPECT_GT(info.compressionRatio, 1.0) << info.plan;
      EXPECT_GT(info.wireBytes, 0u);
    }
    ASSERT_EQ(checkDeviceResult(inputs, outputs[c][0].data(), k.type, k.op, k.count, info), "") << info.plan;
  }
}

std::string codecCaseName(const ::testing::TestParamInfo<DeviceCodecs::ParamType>& info) {
  std::string s = std::get<1>(info.param) + "_n" + std::to_string(std::get<0>(info.param));
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, DeviceCodecs,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4), ::testing::ValuesIn(allSpecs())),
                         codecCaseName);

// Feeding the same gradient T times on the same device buffers, the running
// mean of the outputs converges to the exact sum (error ~ residual / T), as
// test_compressed.cc's host test demands.
TEST(DeviceErrorFeedback, RunningMeanConvergesToExactMean) {
  const int n = 3;
  const size_t count = 5003;
  for (const char* spec : {"q2", "q1", "topk:0.1", "randk:0.1"}) {
    std::vector<std::vector<double>> relErr(n);
    runDeviceRanks(n, [&](int rank, sqzComm_t& comm) {
      RankStream stream;
      std::vector<float> g = rankGradient(rank, count, 3), out(count);
      std::vector<double> exact(count, 0), mean(count, 0);
      for (int r = 0; r < n; ++r) {
        std::vector<float> gr = rankGradient(r, count, 3);
        for (size_t i = 0; i < count; ++i) exact[i] += gr[i];
      }
      double exactNorm = 0;
      for (double e : exact) exactNorm += e * e;
      DeviceBuffer send(count * 4, stream.get()), recv(count * 4, stream.get());
      send.upload(g.data(), count * 4, stream.get());
      sqzState_t state;
      ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &state), sqzSuccess);
      for (int t = 1; t <= 80; ++t) {
        ASSERT_EQ(sqzAllReduceEx(send.get(), recv.get(), count, sqzFloat32, sqzSum, spec, state, comm, stream.sqz()),
                  sqzSuccess)
            << sqzGetLastError(comm);
        recv.download(out.data(), count * 4, stream.get());
        double err = 0;
        for (size_t i = 0; i < count; ++i) {
          mean[i] += (out[i] - mean[i]) / t;
          err += (mean[i] - exact[i]) * (mean[i] - exact[i]);
        }
        if (t == 10 || t == 40 || t == 80) relErr[rank].push_back(std::sqrt(err / exactNorm));
      }
      ASSERT_EQ(asyncError(comm), "");
      sqzStateDestroy(state);
    });
    if (HasFatalFailure()) return;
    ASSERT_EQ(relErr[0].size(), 3u) << spec;
    EXPECT_LT(relErr[0][2], relErr[0][0] / 2.5) << spec << ": " << relErr[0][0] << " -> " << relErr[0][2];
    EXPECT_LT(relErr[0][2], std::string(spec).find("randk") != std::string::npos ? 0.25 : 0.08) << spec;
  }
}

// The same buffer as send and receive, with the communicator's policy and
// the internally keyed error-feedback state (state NULL).
TEST(DeviceAllReduce, InPlace) {
  const size_t count = (size_t{1} << 20) + 3;
  for (int n : {2, 3}) {
    for (const char* spec : {"q4", "topk:0.05", "none"}) {
      std::vector<std::vector<unsigned char>> outs(n);
      std::vector<sqzCallInfo> infos(n);
      runDeviceRanks(n, [&](int rank, sqzComm_t& comm) {
        RankStream stream;
        ASSERT_EQ(sqzCommSetCompression(comm, spec), sqzSuccess);
        std::vector<unsigned char> input = makeInput(sqzFloat32, sqzSum, rank, count, 5);
        DeviceBuffer buf(count * 4, stream.get());
        buf.upload(input.data(), count * 4, stream.get());
        ASSERT_EQ(sqzAllReduce(buf.get(), buf.get(), count, sqzFloat32, sqzSum, comm, stream.sqz()), sqzSuccess)
            << sqzGetLastError(comm);
        sqzGetCallInfo(comm, &infos[rank]);
        outs[rank].resize(count * 4);
        buf.download(outs[rank].data(), count * 4, stream.get());
        ASSERT_EQ(asyncError(comm), "");
      });
      if (HasFatalFailure()) return;
      std::vector<std::vector<unsigned char>> inputs(n);
      for (int r = 0; r < n; ++r) inputs[r] = makeInput(sqzFloat32, sqzSum, r, count, 5);
      for (int r = 1; r < n; ++r) ASSERT_EQ(outs[r], outs[0]) << spec << " rank " << r;
      EXPECT_EQ(checkDeviceResult(inputs, outs[0].data(), sqzFloat32, sqzSum, count, infos[0]), "") << spec;
    }
  }
}

// Integer sums and float max/min take the exact ring on device buffers too.
TEST(DeviceAllReduce, ExactOpsAndTypes) {
  const size_t count = 100003;
  const int n = 3;
  struct Exact {
    sqzDataType_t type;
    sqzRedOp_t op;
  };
  const Exact cases[] = {{sqzInt32, sqzSum}, {sqzInt64, sqzSum}, {sqzFloat32, sqzMax},
                         {sqzFloat64, sqzSum}, {sqzUint8, sqzMin}, {sqzFloat32, sqzProd}};
  std::vector<std::vector<std::vector<unsigned char>>> outs(std::size(cases), std::vector<std::vector<unsigned char>>(n));
  runDeviceRanks(n, [&](int rank, sqzComm_t& comm) {
    RankStream stream;
    RankStates states(comm);
    ASSERT_EQ(sqzCommSetCompression(comm, "q4"), sqzSuccess);
    for (size_t c = 0; c < std::size(cases); ++c) {
      std::vector<unsigned char> input = makeInput(cases[c].type, cases[c].op, rank, count, 9);
      sqzCallInfo info;
      deviceAllReduce(comm, states, stream, "q4", cases[c].type, cases[c].op, input, count, &outs[c][rank], &info);
      EXPECT_EQ(info.exact, 1) << dataTypeName(cases[c].type) << " " << redOpName(cases[c].op);
    }
  });
  if (HasFatalFailure()) return;
  for (size_t c = 0; c < std::size(cases); ++c) {
    std::vector<std::vector<unsigned char>> inputs(n);
    for (int r = 0; r < n; ++r) inputs[r] = makeInput(cases[c].type, cases[c].op, r, count, 9);
    for (int r = 1; r < n; ++r) EXPECT_EQ(outs[c][r], outs[c][0]);
    EXPECT_EQ(checkReduction(inputs, outs[c][0].data(), cases[c].type, cases[c].op, count), "")
        << dataTypeName(cases[c].type) << " " << redOpName(cases[c].op);
  }
}

TEST(DeviceAllReduce, MixingHostAndDeviceBuffersIsInvalidUsage) {
  runDeviceRanks(2, [&](int, sqzComm_t& comm) {
    RankStream stream;
    const size_t count = 100000;
    DeviceBuffer dev(count * 4, stream.get());
    std::vector<float> host(count, 1.0f);
    for (const char* spec : {"q4", "none"}) {
      EXPECT_EQ(sqzAllReduceEx(dev.get(), host.data(), count, sqzFloat32, sqzSum, spec, nullptr, comm, stream.sqz()),
                sqzInvalidUsage)
          << spec;
      EXPECT_EQ(sqzAllReduceEx(host.data(), dev.get(), count, sqzFloat32, sqzSum, spec, nullptr, comm, stream.sqz()),
                sqzInvalidUsage)
          << spec;
    }
    // A host-only plan on device buffers is refused as well.
    EXPECT_EQ(sqzAllReduceEx(dev.get(), dev.get(), count, sqzFloat32, sqzSum, "@qring:q4", nullptr, comm,
                             stream.sqz()),
              sqzInvalidUsage);
    // The communicator keeps working, on device and host buffers.
    dev.upload(host.data(), count * 4, stream.get());
    ASSERT_EQ(sqzAllReduceEx(dev.get(), dev.get(), count, sqzFloat32, sqzSum, "none", nullptr, comm, stream.sqz()),
              sqzSuccess)
        << sqzGetLastError(comm);
    std::vector<float> back(count);
    dev.download(back.data(), count * 4, stream.get());
    EXPECT_EQ(back[count - 1], 2.0f);
    ASSERT_EQ(sqzAllReduce(host.data(), host.data(), count, sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    EXPECT_EQ(host[0], 2.0f);
  });
}

// A state created where a destroyed one was (the allocator reuses the
// address) starts without residual: all-zero input gives an all-zero
// result, whatever the destroyed state still owed.
TEST(DeviceAllReduce, ANewStateStartsWithoutResidual) {
  const size_t count = 100003;
  runDeviceRanks(2, [&](int rank, sqzComm_t& comm) {
    RankStream stream;
    std::vector<unsigned char> input = makeInput(sqzFloat32, sqzSum, rank, count, 61);
    std::vector<float> zeros(count, 0.0f), out(count, 1.0f);
    DeviceBuffer send(count * 4, stream.get()), zero(count * 4, stream.get()), recv(count * 4, stream.get());
    send.upload(input.data(), count * 4, stream.get());
    zero.upload(zeros.data(), count * 4, stream.get());
    int sameAddress = 0;
    for (int round = 0; round < 4; ++round) {
      sqzState_t a = nullptr, b = nullptr;
      ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &a), sqzSuccess);
      ASSERT_EQ(sqzAllReduceEx(send.get(), recv.get(), count, sqzFloat32, sqzSum, "q1", a, comm, stream.sqz()),
                sqzSuccess)
          << sqzGetLastError(comm);
      ASSERT_EQ(sqzStateDestroy(a), sqzSuccess);
      ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &b), sqzSuccess);
      sameAddress += a == b;
      ASSERT_EQ(sqzAllReduceEx(zero.get(), recv.get(), count, sqzFloat32, sqzSum, "q1", b, comm, stream.sqz()),
                sqzSuccess)
          << sqzGetLastError(comm);
      recv.download(out.data(), count * 4, stream.get());
      ASSERT_EQ(sqzStateDestroy(b), sqzSuccess);
      size_t nonzero = 0;
      for (float v : out) nonzero += v != 0;
      EXPECT_EQ(nonzero, 0u) << "round " << round << ": a fresh state" << (a == b ? " (at the destroyed one's address)" : "")
                             << " sent residual";
    }
    ASSERT_EQ(asyncError(comm), "");
    if (rank == 0) std::printf("new state at the destroyed one's address in %d of 4 rounds\n", sameAddress);
  });
}

// SQZ_SEED makes the device codecs' random numbers reproducible across
// communicators (runs).
TEST(DeviceAllReduce, SeedMakesRunsReproducible) {
  ScopedEnv seed("SQZ_SEED", "12345");
  const size_t count = 20011;
  for (const char* spec : {"q2", "randk:0.05"}) {
    std::vector<unsigned char> first[2];
    for (auto& result : first) {
      std::vector<std::vector<unsigned char>> outs(3);
      runDeviceRanks(3, [&](int rank, sqzComm_t& comm) {
        RankStream stream;
        RankStates states(comm);
        sqzCallInfo info;
        std::vector<unsigned char> input = makeInput(sqzFloat32, sqzSum, rank, count, 21);
        deviceAllReduce(comm, states, stream, spec, sqzFloat32, sqzSum, input, count, &outs[rank], &info);
      });
      result = outs[0];
    }
    EXPECT_EQ(first[0], first[1]) << spec;
  }
}

// Stream semantics: with the stream held up by a ~200 ms kernel, 20
// compressed allreduces are enqueued and the host gets control back while
// the GPU has not yet reached them (no host synchronization on the hot
// path); the results are right once the stream is synchronized.
TEST(DeviceAllReduce, ReturnsBeforeTheGpuFinishes) {
  const int n = 2;
  const size_t count = (size_t{1} << 20) + 3;
  const double spinSeconds = 0.2;
  std::vector<std::vector<unsigned char>> outs(n);
  std::vector<double> enqueueSeconds(n, 0);
  std::vector<int> stillBusy(n, 0);
  runDeviceRanks(n, [&](int rank, sqzComm_t& comm) {
    RankStream stream;
    std::vector<unsigned char> input = makeInput(sqzFloat32, sqzSum, rank, count, 31);
    DeviceBuffer send(count * 4, stream.get()), recv(count * 4, stream.get());
    send.upload(input.data(), count * 4, stream.get());
    sqzState_t state;
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &state), sqzSuccess);
    // A first call sets up the state and pools (allowed to block).
    ASSERT_EQ(sqzAllReduceEx(send.get(), recv.get(), count, sqzFloat32, sqzSum, "bf16", state, comm, stream.sqz()),
              sqzSuccess)
        << sqzGetLastError(comm);
    CUDA_OK(cudaStreamSynchronize(stream.get()));
    CUDA_OK(launchSpin(stream.get(), spinSeconds));
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i)
      ASSERT_EQ(sqzAllReduceEx(send.get(), recv.get(), count, sqzFloat32, sqzSum, "bf16", state, comm, stream.sqz()),
                sqzSuccess)
          << "call " << i << ": " << sqzGetLastError(comm);
    enqueueSeconds[rank] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stillBusy[rank] = cudaStreamQuery(stream.get()) == cudaErrorNotReady;
    CUDA_OK(cudaStreamSynchronize(stream.get()));
    outs[rank].resize(count * 4);
    recv.download(outs[rank].data(), count * 4, stream.get());
    ASSERT_EQ(asyncError(comm), "");
    sqzStateDestroy(state);
  });
  if (HasFatalFailure()) return;
  for (int r = 0; r < n; ++r) {
    EXPECT_TRUE(stillBusy[r]) << "rank " << r << ": the stream had finished when the 20 calls returned ("
                              << enqueueSeconds[r] << " s): the host waited for the GPU";
    EXPECT_LT(enqueueSeconds[r], spinSeconds) << "rank " << r;
  }
  EXPECT_EQ(outs[1], outs[0]);
  // The 21st call with error feedback: each rank sends a bf16 rounding of
  // g + e (|e| itself below one rounding), so the result is off the exact
  // sum by at most the incoming and outgoing residuals: 2 roundings, each
  // under one bf16 ulp (2^-7 relative) even if rounding is stochastic.
  std::vector<std::vector<unsigned char>> inputs(n);
  for (int r = 0; r < n; ++r) inputs[r] = makeInput(sqzFloat32, sqzSum, r, count, 31);
  for (size_t i = 0; i < count; ++i) {
    double exact = 0, sumAbs = 0;
    for (int r = 0; r < n; ++r) {
      double v = elementAsDouble(inputs[r].data(), sqzFloat32, i);
      exact += v;
      sumAbs += std::fabs(v);
    }
    double got = elementAsDouble(outs[0].data(), sqzFloat32, i);
    double bound = 2.0 * std::ldexp(1.0, -7) * sumAbs * 1.02 + 4.0 * n * std::ldexp(1.0, -24) * sumAbs;
    ASSERT_LE(std::fabs(got - exact), bound) << "element " << i;
  }
}

// SQZ_TRANSPORT=nccl with one rank (NCCL needs a GPU per rank; the lent
// machine has one).
TEST(DeviceNccl, OneRankOverNccl) {
  ScopedEnv transport("SQZ_TRANSPORT", "nccl");
  const size_t count = (size_t{1} << 20) + 3;
  runDeviceRanks(1, [&](int, sqzComm_t& comm) {
    RankStream stream;
    RankStates states(comm);
    for (const std::string& spec : allSpecs()) {
      for (sqzDataType_t type : kTypes) {
        SCOPED_TRACE(spec + " " + dataTypeName(type));
        std::vector<unsigned char> input = makeInput(type, sqzSum, 0, count, 41), out;
        sqzCallInfo info;
        deviceAllReduce(comm, states, stream, spec, type, sqzSum, input, count, &out, &info);
        if (::testing::Test::HasFatalFailure()) return;
        EXPECT_EQ(checkDevicePlan(info), "");
        EXPECT_EQ(checkDeviceResult({input}, out.data(), type, sqzSum, count, info), "");
      }
    }
  });
}

#ifdef SQZ_GPU_TESTS_HAVE_NCCL
// An application's own one-rank ncclComm, adopted: sqz uses it for device
// buffers and leaves it to the application, which destroys it afterwards.
TEST(DeviceNccl, InitFromAnApplicationsNcclComm) {
  CUDA_OK(cudaSetDevice(0));
  ncclComm_t nccl = nullptr;
  int devices[1] = {0};
  ASSERT_EQ(ncclCommInitAll(&nccl, 1, devices), ncclSuccess);
  sqzComm_t comm = nullptr;
  ASSERT_EQ(sqzCommInitFromNccl(&comm, reinterpret_cast<sqzNcclComm_t>(nccl)), sqzSuccess)
      << sqzGetLastError(nullptr);
  int size = 0, rank = -1;
  EXPECT_EQ(sqzCommCount(comm, &size), sqzSuccess);
  EXPECT_EQ(sqzCommUserRank(comm, &rank), sqzSuccess);
  EXPECT_EQ(size, 1);
  EXPECT_EQ(rank, 0);
  {
    RankStream stream;
    RankStates states(comm);
    const size_t count = (size_t{1} << 20) + 3;
    for (const char* spec : {"q4", "none", "topk:0.05"}) {
      std::vector<unsigned char> input = makeInput(sqzFloat32, sqzSum, 0, count, 51), out;
      sqzCallInfo info;
      deviceAllReduce(comm, states, stream, spec, sqzFloat32, sqzSum, input, count, &out, &info);
      if (HasFatalFailure()) break;
      EXPECT_EQ(checkDevicePlan(info), "") << spec;
      EXPECT_EQ(checkDeviceResult({input}, out.data(), sqzFloat32, sqzSum, count, info), "") << spec;
    }
  }
  EXPECT_EQ(sqzCommDestroy(comm), sqzSuccess);
  // Still the application's: NCCL works on it after sqz let go.
  {
    RankStream stream;
    DeviceBuffer buf(64 * 4, stream.get());
    std::vector<float> ones(64, 1.0f), back(64);
    buf.upload(ones.data(), 64 * 4, stream.get());
    EXPECT_EQ(ncclAllReduce(buf.get(), buf.get(), 64, ncclFloat32, ncclSum, nccl, stream.get()), ncclSuccess);
    buf.download(back.data(), 64 * 4, stream.get());
    EXPECT_EQ(back[63], 1.0f);
  }
  EXPECT_EQ(ncclCommDestroy(nccl), ncclSuccess);
}
#endif

}  // namespace
}  // namespace sqz::test
