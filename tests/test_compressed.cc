// Compressed allreduce over threads-as-ranks: every algorithm x codec x rank
// count x size against the fp64 sum with bounds the codec implies, bitwise
// identity across ranks, error feedback (running mean converges to the
// exact mean), the sparse dense switch, spec mismatch, NaN, exact fallbacks,
// and the codec ring's chunked pipeline against one chunk per segment.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "collectives/collective_args.h"
#include "harness/compressed_call.h"
#include "harness/lossy_check.h"
#include "harness/rank_threads.h"
#include "harness/reference.h"
#include "kernels/cpu_codec.h"
#include "kernels/half.h"
#include "kernels/wire_format.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/plan_name.h"

namespace sqz::test {
namespace {

using Outcome = CompressedCall;

Outcome runOnce(int n, const std::string& plan, size_t count, sqzRedOp_t op = sqzSum) {
  return runCompressedCall(n, plan, count, op);
}

class CompressedPlans : public ::testing::TestWithParam<std::tuple<std::string, int, size_t>> {};

// Against the fp64 sum with the bound of the codec and algorithm that ran
// (harness/lossy_check.h), bitwise identical on all ranks; the same check
// rejects this very output zeroed, offset by its rms, or halved (1-bit
// codecs only from 100k elements: below, at 5+ ranks, a halved output is
// within the noise, which is ~50x the signal per element; test_lossy_check
// shows every breakage rejected at sizes where it is detectable).
TEST_P(CompressedPlans, WithinCodecBoundAndIdenticalOnAllRanks) {
  auto [plan, n, count] = GetParam();
  Outcome o = runOnce(n, plan, count);
  for (int r = 1; r < n; ++r)
    ASSERT_EQ(std::memcmp(o.outputs[r].data(), o.outputs[0].data(), count * 4), 0) << "rank " << r << " differs";
  EXPECT_EQ(o.infos[0].exact, 0);
  if (count >= 100000) {  // headers dominate tiny buffers
    EXPECT_GT(o.infos[0].compressionRatio, 1.5) << plan;
  }
  const LossyCall call = o.call();
  EXPECT_EQ(checkLossy(o.inputs, o.outputs[0], call), "");
  std::vector<Breakage> broken{Breakage::Zeroed, Breakage::Offset};
  if (plan.find("q1") == std::string::npos || count >= 100000) broken.push_back(Breakage::Halved);
  for (Breakage b : broken)
    EXPECT_NE(checkLossy(o.inputs, breakOutput(o.outputs[0], b, n), call), "") << breakageName(b) << " passed";
}

std::string planName(const ::testing::TestParamInfo<CompressedPlans::ParamType>& info) {
  std::string s = std::get<0>(info.param) + "_n" + std::to_string(std::get<1>(info.param)) + "_c" +
                  std::to_string(std::get<2>(info.param));
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    All, CompressedPlans,
    ::testing::Combine(::testing::Values("@qa2a:q8", "@qa2a:q4", "@qa2a:q2", "@qa2a:q1", "@qring:q4", "@qring:bf16",
                                         "@qring:fp16", "@qa2a:bf16", "@sparse_ag:topk:0.05",
                                         "@sparse_split:topk:0.05", "@randk:randk:0.05"),
                       ::testing::Values(2, 3, 4, 5, 8),
                       ::testing::Values(size_t{1}, size_t{1023}, size_t{100003}, (size_t{1} << 20) + 3)),
    planName);

// The codecs' options through the collectives: top-K values stored as bf16
// or int8, random-K rescaled (and its value formats), quantizers rounding to
// nearest and with other block sizes.
INSTANTIATE_TEST_SUITE_P(
    Options, CompressedPlans,
    ::testing::Combine(::testing::Values("@sparse_ag:topk:0.05:bf16", "@sparse_split:topk:0.05:int8",
                                         "@sparse_ag:topk:0.02:int8", "@sparse_split:topk:0.1:bf16",
                                         "@randk:randk:0.05:rescale", "@randk:randk:0.1:bf16",
                                         "@randk:randk:0.05:int8:rescale", "@qa2a:q4:rn", "@qring:q8:block=64",
                                         "@qa2a:q2:block=1024", "@qring:q4:block=64:rn", "@qa2a:q8:block=8",
                                         "@gather:q4", "@gather:q2"),
                       ::testing::Values(2, 3, 5), ::testing::Values(size_t{1023}, size_t{100003})),
    planName);

// sqzAvg with every codec (and forced algorithms): the compressed sum
// divided once, bitwise (two fresh states draw the same rounding), and
// within the bound of the codec for the average.
class CompressedAverage : public ::testing::TestWithParam<std::string> {};

TEST_P(CompressedAverage, IsTheCompressedSumDividedOnce) {
  const std::string spec = GetParam();
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const int n = 3;
  const size_t count = 20011;
  Contributions inputs(n);
  std::vector<std::vector<float>> avgs(n);
  std::vector<sqzCallInfo> infos(n);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> g = rankGradient(rank, count, 5), sum(count), avg(count);
    inputs[rank] = g;
    sqzState_t a, b;
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &a), sqzSuccess);
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &b), sqzSuccess);
    ASSERT_EQ(sqzAllReduceEx(g.data(), sum.data(), count, sqzFloat32, sqzSum, spec.c_str(), a, comm, nullptr),
              sqzSuccess)
        << sqzGetLastError(comm);
    ASSERT_EQ(sqzAllReduceEx(g.data(), avg.data(), count, sqzFloat32, sqzAvg, spec.c_str(), b, comm, nullptr),
              sqzSuccess);
    sqzGetCallInfo(comm, &infos[rank]);
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(avg[i], sum[i] / static_cast<float>(n)) << spec << " element " << i;
    avgs[rank] = avg;
    sqzStateDestroy(a);
    sqzStateDestroy(b);
  });
  for (int r = 1; r < n; ++r) EXPECT_EQ(avgs[r], avgs[0]);
  EXPECT_EQ(infos[0].exact, spec == "none" ? 1 : 0) << infos[0].plan;
  const LossyCall call = LossyCall::of(infos[0], sqzFloat32, sqzAvg);
  EXPECT_EQ(checkLossy(inputs, avgs[0], call), "") << infos[0].plan;
  EXPECT_NE(checkLossy(inputs, breakOutput(avgs[0], Breakage::Zeroed, n), call), "");
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, CompressedAverage,
                         ::testing::Values("none", "bf16", "fp16", "q8", "q4", "q2", "q1", "q4:rn", "topk:0.05",
                                           "topk:0.05:int8", "randk:0.05", "randk:0.1:rescale", "@qring:q4",
                                           "@qa2a:bf16", "@sparse_split:topk:0.05", "@sparse_ag:topk:0.05:bf16"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

// Large buffers (1M+ elements) for the default algorithm of each codec.
TEST(CompressedLarge, MillionElements) {
  for (const char* spec : {"q4", "topk:0.01", "bf16"}) {
    Outcome o = runOnce(4, spec, (1u << 20) + 3);
    for (int r = 1; r < 4; ++r) EXPECT_EQ(o.outputs[r], o.outputs[0]) << spec;
    EXPECT_GT(o.infos[0].compressionRatio, 1.5) << spec;
    EXPECT_EQ(checkLossy(o.inputs, o.outputs[0], o.call()), "") << spec;
    for (Breakage b : allBreakages())
      EXPECT_NE(checkLossy(o.inputs, breakOutput(o.outputs[0], b, 4), o.call()), "") << spec << " " << breakageName(b);
  }
}

// Feeding the same gradient T times, the running mean of the outputs
// converges to the exact sum (error ~ residual / T).
// @gather on host buffers (the scaled sign's default): each rank's whole buffer encoded once, every
// payload decoded in rank order and summed, bitwise on every rank; for the
// scaled sign (deterministic) that is exactly the sum of each rank's own
// encode-decode, and qa2a (whose owner re-encodes the sum) gives another
// output.
TEST(CompressedGather, SignIsOneEncodingPerRankSummedInRankOrder) {
  const int n = 4;
  const size_t count = 10007;
  const CompressedCall o = runCompressedCall(n, "@gather:sign", count);
  const CodecParams p = parseCodecSpec("sign");
  std::vector<float> want(count);
  for (int r = 0; r < n; ++r) {
    EncodeArgs a;
    a.input = o.inputs[r].data();
    a.count = count;
    std::vector<uint8_t> payload(encodedBytes(p, count));
    encodeCpu(p, a, payload.data(), payload.size());
    DecodeExpect x;
    x.params = p;
    x.count = count;
    decodeCpu(x, payload.data(), payload.size(), want.data(), r == 0 ? DecodeMode::Overwrite : DecodeMode::Accumulate);
  }
  for (int r = 0; r < n; ++r) {
    EXPECT_STREQ(o.infos[r].algorithm, "gather");
    EXPECT_EQ(std::memcmp(o.outputs[r].data(), want.data(), count * 4), 0) << "rank " << r;
  }
  // Each rank sent its payload to the 3 others.
  EXPECT_EQ(o.infos[0].wireBytes, 3 * encodedBytes(p, count));
  // A plain "sign" runs the same on host buffers (its default below about
  // 57 ranks: src/tuner/algorithm_table.cc), with the same output.
  const CompressedCall d = runCompressedCall(n, "sign", count);
  for (int r = 0; r < n; ++r) {
    EXPECT_STREQ(d.infos[r].algorithm, "gather");
    EXPECT_EQ(std::memcmp(d.outputs[r].data(), want.data(), count * 4), 0) << "rank " << r;
  }
  const CompressedCall q = runCompressedCall(n, "@qa2a:sign", count);
  EXPECT_NE(std::memcmp(q.outputs[0].data(), want.data(), count * 4), 0);
}

// sign:rot through the plans that carry it on host buffers: gather (its
// default) and qa2a decode each payload (rotating it back) before they sum,
// so the output is bitwise the same on every rank and within the rotated
// sign's bound (harness/lossy_check.h), which rejects this very output
// zeroed, halved, negated, offset or with a chunk dropped (test_lossy_check
// shows more; one skipped block per chunk is below a 1-bit codec's floor).
TEST(CompressedRotatedSign, WithinItsBoundAndIdenticalOnAllRanks) {
  for (const char* plan : {"@gather:sign:rot", "@qa2a:sign:rot", "sign:rot"}) {
    for (int n : {2, 4, 5}) {
      for (size_t count : {size_t{1023}, size_t{100003}}) {
        const Outcome o = runOnce(n, plan, count);
        for (int r = 1; r < n; ++r)
          EXPECT_EQ(std::memcmp(o.outputs[r].data(), o.outputs[0].data(), count * 4), 0) << plan << " rank " << r;
        EXPECT_STREQ(o.infos[0].codec, "sign:rot");
        if (std::string(plan) == "sign:rot") {
          EXPECT_STREQ(o.infos[0].algorithm, "gather");
        }
        const LossyCall call = o.call();
        EXPECT_EQ(checkLossy(o.inputs, o.outputs[0], call), "") << plan << " n=" << n << " count=" << count;
        if (count < 100000) continue;
        for (Breakage b : {Breakage::Zeroed, Breakage::Halved, Breakage::Negated, Breakage::Offset,
                           Breakage::DroppedChunk})
          EXPECT_NE(checkLossy(o.inputs, breakOutput(o.outputs[0], b, n), call), "")
              << plan << " n=" << n << ": " << breakageName(b) << " passed";
      }
    }
  }
  // The plain sign on the same inputs gives another output.
  const Outcome plain = runOnce(4, "@gather:sign", 100003), rot = runOnce(4, "@gather:sign:rot", 100003);
  EXPECT_NE(plain.outputs[0], rot.outputs[0]);
  // qring re-encodes partial sums, each decoded (rotated back) before it is
  // added: identical on every rank (its bound is covered by error feedback's
  // convergence below).
  const Outcome ring = runOnce(4, "@qring:sign:rot", 100003);
  for (int r = 1; r < 4; ++r) EXPECT_EQ(ring.outputs[r], ring.outputs[0]);
}

TEST(CompressedErrorFeedback, RunningMeanConvergesToExactMean) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const int n = 3;
  const size_t count = 5003;
  for (const char* plan : {"@qa2a:q2", "@qring:q2", "@sparse_ag:topk:0.1", "@sparse_split:topk:0.1",
                           "@randk:randk:0.1", "@gather:sign", "@gather:sign:rot", "@qa2a:sign:rot",
                           "@qring:sign:rot"}) {
    std::vector<std::vector<double>> relErr(n);
    runRanks(n, [&](int rank, sqzComm_t& comm) {
      std::vector<float> g = rankGradient(rank, count, 3), out(count);
      std::vector<double> exact(count, 0), mean(count, 0);
      for (int r = 0; r < n; ++r) {
        std::vector<float> gr = rankGradient(r, count, 3);
        for (size_t i = 0; i < count; ++i) exact[i] += gr[i];
      }
      sqzState_t state;
      ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &state), sqzSuccess);
      double exactNorm = 0;
      for (double e : exact) exactNorm += e * e;
      for (int t = 1; t <= 80; ++t) {
        ASSERT_EQ(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, plan, state, comm, nullptr),
                  sqzSuccess)
            << sqzGetLastError(comm);
        double err = 0;
        for (size_t i = 0; i < count; ++i) {
          mean[i] += (out[i] - mean[i]) / t;
          err += (mean[i] - exact[i]) * (mean[i] - exact[i]);
        }
        if (t == 10 || t == 40 || t == 80) relErr[rank].push_back(std::sqrt(err / exactNorm));
      }
      sqzStateDestroy(state);
    });
    // 8x more calls: the error should shrink well over 2x (ideal 8x).
    EXPECT_LT(relErr[0][2], relErr[0][0] / 2.5) << plan << ": " << relErr[0][0] << " -> " << relErr[0][2];
    // Random-K revisits an element every ~1/ratio calls, so its residual (and
    // the mean's error at a given T) is larger than the others'.
    EXPECT_LT(relErr[0][2], std::string(plan).find("randk") != std::string::npos ? 0.25 : 0.08) << plan;
  }
}

TEST(CompressedSparse, DenseSwitchFiresWhereItsCostSays) {
  const int n = 4;
  const size_t count = 40000;
  // topk:0.5 -> N*K pairs (4 * 20000 * 8 B) outweigh the dense ring (2*3/4*160000 B).
  Outcome heavy = runOnce(n, "@sparse_ag:topk:0.5", count);
  EXPECT_EQ(heavy.infos[0].wireBytes, static_cast<size_t>(2.0 * 3 / 4 * count * 4));
  // topk:0.01 -> the allgather of N-1 payloads is far cheaper.
  Outcome light = runOnce(n, "@sparse_ag:topk:0.01", count);
  EXPECT_LT(light.infos[0].wireBytes, static_cast<size_t>(3 * (count / 100 + 1) * 8 + 3 * 256));
  for (int r = 1; r < n; ++r) EXPECT_EQ(heavy.outputs[r], heavy.outputs[0]);
}

TEST(CompressedPolicy, AverageIsTheCompressedSumDividedOnce) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const size_t count = 10007;
  runRanks(4, [&](int rank, sqzComm_t& comm) {
    // Two fresh states: the same RNG key, so the same rounding decisions.
    std::vector<float> g = rankGradient(rank, count, 5), sum(count), avg(count);
    sqzState_t a, b;
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &a), sqzSuccess);
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &b), sqzSuccess);
    ASSERT_EQ(sqzAllReduceEx(g.data(), sum.data(), count, sqzFloat32, sqzSum, "q8", a, comm, nullptr), sqzSuccess);
    ASSERT_EQ(sqzAllReduceEx(g.data(), avg.data(), count, sqzFloat32, sqzAvg, "q8", b, comm, nullptr), sqzSuccess);
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(avg[i], sum[i] / 4.0f) << i;
    sqzStateDestroy(a);
    sqzStateDestroy(b);
  });
}

// SQZ_SEED makes stochastic codecs reproducible across communicators (runs).
TEST(CompressedPolicy, SeedMakesRunsReproducible) {
  ScopedEnv seed("SQZ_SEED", "12345");
  for (const char* plan : {"@qa2a:q2", "@randk:randk:0.05"}) {
    Outcome a = runOnce(3, plan, 20011), b = runOnce(3, plan, 20011);
    EXPECT_EQ(a.outputs[0], b.outputs[0]) << plan;
  }
}

TEST(CompressedPolicy, MismatchedSpecsFailOnEveryRank) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  runRanks(3, [&](int rank, sqzComm_t& comm) {
    std::vector<float> g(4096, 1.0f);
    const char* spec = rank == 1 ? "q8" : "q4";
    EXPECT_EQ(sqzAllReduceEx(g.data(), g.data(), g.size(), sqzFloat32, sqzSum, spec, nullptr, comm, nullptr),
              sqzInvalidUsage);
    EXPECT_NE(std::string(sqzGetLastError(comm)).find("disagree"), std::string::npos);
    // The communicator keeps working.
    EXPECT_EQ(sqzAllReduceEx(g.data(), g.data(), g.size(), sqzFloat32, sqzSum, "q8", nullptr, comm, nullptr),
              sqzSuccess);
  });
}

TEST(CompressedPolicy, NonFiniteInputIsSentExactly) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const size_t count = 10000;
  runRanks(3, [&](int rank, sqzComm_t& comm) {
    std::vector<float> g(count, 1.0f), out(count);
    if (rank == 2) g[5] = std::nanf(""), g[77] = INFINITY;
    ASSERT_EQ(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, "q4", nullptr, comm, nullptr),
              sqzSuccess);
    EXPECT_TRUE(std::isnan(out[5]));
    EXPECT_TRUE(std::isinf(out[77]));
    EXPECT_EQ(out[6], 3.0f);  // exact elsewhere, as dense would be
    sqzCallInfo info;
    sqzGetCallInfo(comm, &info);
    EXPECT_EQ(info.exact, 1);
  });
}

TEST(CompressedPolicy, ExactPathForIntegersProdAndSmallBuffers) {
  runRanks(2, [&](int rank, sqzComm_t& comm) {
    ASSERT_EQ(sqzCommSetCompression(comm, "q1"), sqzSuccess);
    std::vector<int32_t> ints(100000, rank + 1);
    ASSERT_EQ(sqzAllReduce(ints.data(), ints.data(), ints.size(), sqzInt32, sqzSum, comm, nullptr), sqzSuccess);
    EXPECT_EQ(ints[99999], 3);
    std::vector<float> f(100000, 1.5f);
    ASSERT_EQ(sqzAllReduce(f.data(), f.data(), f.size(), sqzFloat32, sqzProd, comm, nullptr), sqzSuccess);
    EXPECT_EQ(f[0], 2.25f);
    std::vector<float> small(1000, 0.25f);  // 4 KB < SQZ_MIN_BYTES (64 KiB)
    ASSERT_EQ(sqzAllReduce(small.data(), small.data(), small.size(), sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    EXPECT_EQ(small[999], 0.5f);
    sqzCallInfo info;
    sqzGetCallInfo(comm, &info);
    EXPECT_EQ(info.exact, 1);
    // A large float sum does compress under the communicator's policy.
    std::vector<float> big(100000, 0.5f);
    ASSERT_EQ(sqzAllReduce(big.data(), big.data(), big.size(), sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
    sqzGetCallInfo(comm, &info);
    EXPECT_EQ(info.exact, 0);
    EXPECT_STREQ(info.codec, "q1");
    EXPECT_GT(info.compressionRatio, 10);
  });
}

// fp16 and bf16 buffers are encoded from, and the result rounded back to,
// their own type: within the codec's bound plus that rounding.
TEST(CompressedPolicy, HalfPrecisionInputs) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const size_t count = 30001;
  for (sqzDataType_t type : {sqzFloat16, sqzBfloat16}) {
    for (const char* spec : {"q8", "topk:0.05", "bf16"}) {
      std::vector<std::vector<uint16_t>> outs(3);
      Contributions inputs(3);
      std::vector<sqzCallInfo> infos(3);
      runRanks(3, [&](int rank, sqzComm_t& comm) {
        std::vector<float> x = rankGradient(rank, count, 9);
        std::vector<uint16_t> g(count);
        inputs[rank].resize(count);
        for (size_t i = 0; i < count; ++i) {
          g[i] = type == sqzFloat16 ? floatToFp16(x[i]) : floatToBf16(x[i]);
          inputs[rank][i] = type == sqzFloat16 ? fp16ToFloat(g[i]) : bf16ToFloat(g[i]);
        }
        outs[rank].resize(count);
        ASSERT_EQ(sqzAllReduceEx(g.data(), outs[rank].data(), count, type, sqzSum, spec, nullptr, comm, nullptr),
                  sqzSuccess)
            << sqzGetLastError(comm);
        sqzGetCallInfo(comm, &infos[rank]);
      });
      for (int r = 1; r < 3; ++r) EXPECT_EQ(outs[r], outs[0]);
      std::vector<float> out(count);
      for (size_t i = 0; i < count; ++i) out[i] = type == sqzFloat16 ? fp16ToFloat(outs[0][i]) : bf16ToFloat(outs[0][i]);
      const LossyCall call = LossyCall::of(infos[0], type, sqzSum);
      EXPECT_EQ(infos[0].exact, 0) << spec;
      EXPECT_EQ(checkLossy(inputs, out, call), "") << spec << " " << infos[0].plan;
      for (Breakage b : allBreakages())
        EXPECT_NE(checkLossy(inputs, breakOutput(out, b, 3), call), "") << spec << " " << breakageName(b);
    }
  }
}

// The ring of encoded chunks (qring) pipelines every segment in chunks of
// a quarter of SQZ_CHUNK_BYTES of fp32, in whole codec blocks. At 16 KiB
// (1024 elements) a 100003-element buffer travels as 20-50 chunks per
// segment; at 64 MiB as one. Both runs feed the same gradient twice through
// one error-feedback state on each rank, under one seed.
struct FedTwice {
  std::vector<std::vector<float>> first, second;  // per rank
  std::vector<sqzCallInfo> infos;                 // per rank, of the second call
};

FedTwice feedTwice(int n, const std::string& plan, size_t count) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0"), seed("SQZ_SEED", "12345");  // the same random numbers in both runs
  FedTwice o{std::vector<std::vector<float>>(n), std::vector<std::vector<float>>(n), std::vector<sqzCallInfo>(n)};
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    std::vector<float> g = rankGradient(rank, count, 11), out(count);
    sqzState_t state = nullptr;
    EXPECT_EQ(sqzStateCreate(comm, count, sqzFloat32, &state), sqzSuccess);
    for (auto* calls : {&o.first, &o.second}) {
      EXPECT_EQ(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, plan.c_str(), state, comm, nullptr),
                sqzSuccess)
          << plan << ": " << sqzGetLastError(comm);
      (*calls)[rank] = out;
    }
    sqzGetCallInfo(comm, &o.infos[rank]);
    sqzStateDestroy(state);
  });
  return o;
}

// Bytes rank 0 sends when every segment travels in chunks of `chunk`
// elements: reduce-scatter segments 0, -1, .., 2-n, allgather 1, 0, .., 3-n
// (mod n), each chunk a payload with its own header.
size_t ringWireBytes(const CodecParams& codec, size_t count, int n, size_t chunk) {
  const EvenSplit split{count, static_cast<size_t>(n)};
  auto segmentBytes = [&](long s) {
    const size_t len = split.length(static_cast<size_t>(((s % n) + n) % n));
    size_t bytes = 0;
    for (size_t c = 0; c == 0 || c * chunk < len; ++c)
      bytes += encodedBytes(codec, std::min(len, (c + 1) * chunk) - std::min(len, c * chunk));
    return bytes;
  };
  size_t total = 0;
  for (long s = 0; s + 1 < n; ++s) total += segmentBytes(-s) + segmentBytes(1 - s);
  return total;
}

class CodecRingChunks : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

// Chunking changes nothing but the headers on the wire: the outputs of both
// calls (the second shows what the first left in each residual) are bitwise
// those of one chunk per segment, identical on all ranks.
TEST_P(CodecRingChunks, ResultAndResidualAreThoseOfOneChunkPerSegment) {
  auto [plan, n] = GetParam();
  const size_t count = 100003;
  FedTwice whole, chunked;
  {
    ScopedEnv chunkBytes("SQZ_CHUNK_BYTES", "67108864");
    whole = feedTwice(n, plan, count);
  }
  {
    ScopedEnv chunkBytes("SQZ_CHUNK_BYTES", "16384");
    chunked = feedTwice(n, plan, count);
  }
  const std::string ran = whole.infos[0].plan;
  const CodecParams codec = parsePlanName(ran[0] == '@' ? ran.substr(1) : ran).codec;
  EXPECT_EQ(whole.infos[0].wireBytes, ringWireBytes(codec, count, n, count)) << plan;
  EXPECT_EQ(chunked.infos[0].wireBytes, ringWireBytes(codec, count, n, 1024)) << plan;
  EXPECT_GT(chunked.infos[0].wireBytes, whole.infos[0].wireBytes) << plan;
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(std::memcmp(chunked.first[r].data(), whole.first[0].data(), count * 4), 0) << plan << " rank " << r;
    EXPECT_EQ(std::memcmp(chunked.second[r].data(), whole.second[0].data(), count * 4), 0) << plan << " rank " << r;
    EXPECT_EQ(whole.first[r], whole.first[0]) << plan << " rank " << r;
  }
  EXPECT_NE(whole.first[0], whole.second[0]) << plan << ": the second call should carry the first one's residual";
}

INSTANTIATE_TEST_SUITE_P(Codecs, CodecRingChunks,
                         ::testing::Combine(::testing::Values("@qring:q4", "@qring:q2:block=64", "@qring:q8:block=1024",
                                                              "@qring:q4:rn", "@qring:bf16", "@qring:fp16",
                                                              "@qring:sign"),
                                            ::testing::Values(2, 3, 5)),
                         [](const auto& info) {
                           std::string s = std::get<0>(info.param) + "_n" + std::to_string(std::get<1>(info.param));
                           for (char& c : s)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

// Pipelined in 1024-element chunks, the value check holds, and rejects the
// output with one chunk zeroed (as a lost or skipped chunk would leave it):
// a chunk in the middle of a segment, and a segment's last (short) chunk.
TEST(CodecRingChunked, ZeroedChunkFailsTheValueCheck) {
  ScopedEnv chunkBytes("SQZ_CHUNK_BYTES", "16384");
  const size_t count = 100003;
  for (const char* plan : {"@qring:q4", "@qring:q8", "@qring:bf16"}) {
    for (int n : {3, 4}) {
      CompressedCall o = runCompressedCall(n, plan, count);
      const LossyCall call = o.call();
      for (int r = 1; r < n; ++r) EXPECT_EQ(o.outputs[r], o.outputs[0]) << plan;
      EXPECT_EQ(checkLossy(o.inputs, o.outputs[0], call), "") << plan;
      const EvenSplit split{count, static_cast<size_t>(n)};
      const size_t mid = split.offset(1) + 5 * 1024, lastOfSegment = split.offset(1) + split.length(1) / 1024 * 1024;
      for (size_t begin : {mid, lastOfSegment}) {
        std::vector<float> broken = o.outputs[0];
        const size_t end = std::min(begin + 1024, split.offset(2));
        std::fill(broken.begin() + begin, broken.begin() + end, 0.0f);
        EXPECT_NE(checkLossy(o.inputs, broken, call), "") << plan << " n=" << n << ": chunk at " << begin << " zeroed";
      }
      for (Breakage b : allBreakages())
        EXPECT_NE(checkLossy(o.inputs, breakOutput(o.outputs[0], b, n), call), "") << plan << " " << breakageName(b);
    }
  }
}

TEST(CompressedPolicy, BadSpecsAreInvalidArguments) {
  runRanks(1, [&](int, sqzComm_t& comm) {
    float x[4] = {0};
    for (const char* spec : {"q3", "topk:0", "topk:2", "@nosuch:q4", "@sparse_ag:q4", "@hier/q4/qa2a:q4", "zstd"}) {
      EXPECT_EQ(sqzCommSetCompression(comm, spec), sqzInvalidArgument) << spec;
      EXPECT_EQ(sqzAllReduceEx(x, x, 4, sqzFloat32, sqzSum, spec, nullptr, comm, nullptr), sqzInvalidArgument) << spec;
    }
    sqzState_t state;
    ASSERT_EQ(sqzStateCreate(comm, 8, sqzFloat32, &state), sqzSuccess);
    EXPECT_EQ(sqzAllReduceEx(x, x, 4, sqzFloat32, sqzSum, "q4", state, comm, nullptr), sqzInvalidArgument);
    sqzStateDestroy(state);
  });
}

}  // namespace
}  // namespace sqz::test
