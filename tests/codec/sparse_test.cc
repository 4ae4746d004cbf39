// Top-K keeps exactly the K largest magnitudes (ties by index); random-K
// draws the same indices on every rank and is unbiased when rescaled.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "kernels/codec_math.h"
#include "kernels/cpu_topk_scan.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

std::vector<uint32_t> payloadIndices(const CodecParams& p, size_t n, const std::vector<uint8_t>& payload) {
  PayloadLayout l = payloadLayout(p, n, false);
  std::vector<uint32_t> idx(l.selected);
  std::memcpy(idx.data(), payload.data() + l.params, idx.size() * 4);
  return idx;
}

// The K largest magnitudes, ties by lower index: by index (or, unsorted,
// largest first).
std::vector<uint32_t> bruteForceTopK(const std::vector<float>& x, size_t k, bool byIndex = true) {
  std::vector<uint32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return magnitudeKey(x[a]) > magnitudeKey(x[b]); });
  order.resize(k);
  if (byIndex) std::sort(order.begin(), order.end());
  return order;
}

TEST(TopK, ExactlyTheKLargestWithTiesByIndex) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> small(-4, 4);
  std::vector<std::vector<float>> inputs = {test::normalInput(10007, 1), test::heavyTailedInput(999, 2),
                                            std::vector<float>(1000, -2.0f), std::vector<float>(17, 0.0f), {7.0f}};
  std::vector<float> ties(5000);
  for (auto& v : ties) v = static_cast<float>(small(rng));  // many exact ties, both signs
  inputs.push_back(ties);
  for (const char* spec : {"topk:0.001", "topk:0.01", "topk:0.1", "topk:0.5", "topk:1", "topk:0.2:bf16"}) {
    const CodecParams p = parseCodecSpec(spec);
    for (const auto& x : inputs) {
      EncodeArgs a;
      a.input = x.data();
      a.count = x.size();
      auto payload = test::encodeToVector(p, a);
      auto idx = payloadIndices(p, x.size(), payload);
      ASSERT_EQ(idx.size(), selectedCount(p, x.size()));
      EXPECT_EQ(idx, bruteForceTopK(x, idx.size())) << spec << " n=" << x.size();
    }
  }
}

// Large buffers select through a threshold estimated from a strided sample;
// inputs that defeat the sample (all ties, the large values exactly on or
// exactly off the sampled positions) must still give the exact K.
TEST(TopK, LargeBuffersStayExactWhateverTheSampleSees) {
  const size_t n = (1 << 19) + 37, stride = n / (1 << 15);  // just above the sampled path's minimum
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-3, 3);
  std::vector<std::pair<const char*, std::vector<float>>> inputs;
  inputs.emplace_back("normal", test::normalInput(n, 7));
  inputs.emplace_back("heavy", test::heavyTailedInput(n, 8));
  std::vector<float> ties(n);
  for (auto& v : ties) v = static_cast<float>(small(rng));
  inputs.emplace_back("ties", ties);
  inputs.emplace_back("zeros", std::vector<float>(n, 0.0f));
  std::vector<float> onSample = test::normalInput(n, 9, 1e-3f), offSample = onSample;
  for (size_t i = 0; i < n; ++i) (i % stride == 0 ? onSample : offSample)[i] *= 1e4f;
  inputs.emplace_back("large-on-sampled-positions", onSample);
  inputs.emplace_back("large-off-sampled-positions", offSample);
  for (const auto& [name, x] : inputs) {
    const std::vector<uint32_t> largestFirst = bruteForceTopK(x, x.size(), false);  // one sort per input
    for (const char* spec : {"topk:0.001", "topk:0.01", "topk:0.05"}) {
      const CodecParams p = parseCodecSpec(spec);
      EncodeArgs a;
      a.input = x.data();
      a.count = x.size();
      auto idx = payloadIndices(p, x.size(), test::encodeToVector(p, a));
      ASSERT_EQ(idx.size(), selectedCount(p, x.size()));
      std::vector<uint32_t> want(largestFirst.begin(), largestFirst.begin() + static_cast<std::ptrdiff_t>(idx.size()));
      std::sort(want.begin(), want.end());
      EXPECT_EQ(idx, want) << spec << " " << name;
    }
  }
}

// With error feedback the sampled scan forms y = g + e itself: the indices
// are still the exact top K of g + e, the sent values are y's, and the new
// residual is y everywhere but at the sent indices (v - decode(v) there),
// also when the sample misses and the exact fallback finishes y.
TEST(TopK, ErrorFeedbackFusedIntoTheScanKeepsEveryInvariant) {
  const size_t n = (1 << 19) + 37, stride = n / (1 << 15);
  std::vector<std::pair<const char*, std::vector<float>>> inputs;
  inputs.emplace_back("normal", test::normalInput(n, 11, 1e-3f));
  std::vector<float> offSample = test::normalInput(n, 12, 1e-3f);
  for (size_t i = 0; i < n; ++i)
    if (i % stride != 0) offSample[i] *= 1e4f;  // the sample misses: the fallback runs
  inputs.emplace_back("large-off-sampled-positions", offSample);
  const std::vector<float> e0 = test::normalInput(n, 13, 1e-3f);
  for (const auto& [name, g] : inputs) {
    std::vector<float> y(n);
    for (size_t i = 0; i < n; ++i) y[i] = g[i] + e0[i];
    const std::vector<uint32_t> largestFirst = bruteForceTopK(y, n, false);
    for (const char* spec : {"topk:0.01", "topk:0.01:bf16"}) {
      const CodecParams p = parseCodecSpec(spec);
      std::vector<float> e = e0;
      EncodeArgs a;
      a.input = g.data();
      a.count = n;
      a.residual = e.data();
      const auto payload = test::encodeToVector(p, a);
      const auto idx = payloadIndices(p, n, payload);
      std::vector<uint32_t> want(largestFirst.begin(), largestFirst.begin() + static_cast<std::ptrdiff_t>(idx.size()));
      std::sort(want.begin(), want.end());
      ASSERT_EQ(idx, want) << spec << " " << name;
      EncodeArgs d;
      d.count = n;
      const std::vector<float> dec = test::decodeToVector(p, d, payload);
      std::vector<bool> sent(n, false);
      for (uint32_t i : idx) sent[i] = true;
      for (size_t i = 0; i < n; ++i) {
        const float expected = sent[i] ? y[i] - dec[i] : y[i];
        ASSERT_EQ(floatBits(e[i]), floatBits(expected)) << spec << " " << name << " element " << i;
      }
    }
  }
}

// The scan kernels on every vector path this CPU has agree with the scalar
// one: the same candidates, the same y written, and when a block would pass
// the cap, they stop after it with y written exactly that far.
TEST(TopK, ScanPathsAgreeWithTheScalarScan) {
  using Scan = size_t (*)(const float*, const float*, float*, size_t, int32_t, uint32_t*, float*, size_t, size_t*);
  std::vector<std::pair<const char*, std::pair<Scan, Scan>>> paths;
  paths.push_back({"base", {[](const float* g, const float* yi, float* yo, size_t n, int32_t t, uint32_t* c, float* v,
                               size_t cap, size_t* f) { return cpusimd::scanAtLeastBase<true>(g, yi, yo, 0, n, t, c, v, cap, f); },
                            [](const float* g, const float* yi, float* yo, size_t n, int32_t t, uint32_t* c, float* v,
                               size_t cap, size_t* f) { return cpusimd::scanAtLeastBase<false>(g, yi, yo, 0, n, t, c, v, cap, f); }}});
#if SQZ_CPU_SIMD
  const cpusimd::Isa have = cpusimd::detectIsa();
  if (have != cpusimd::Isa::Base)
    paths.push_back({"avx2", {cpusimd::scanAtLeastAvx2<true>, cpusimd::scanAtLeastAvx2<false>}});
  if (have == cpusimd::Isa::Avx512)
    paths.push_back({"avx512", {cpusimd::scanAtLeast512<true>, cpusimd::scanAtLeast512<false>}});
#endif
  ASSERT_GE(paths.size(), 1u);
  const size_t n = 10007;
  std::vector<float> g = test::heavyTailedInput(n, 21), e0 = test::normalInput(n, 22);
  // Keys exactly at a threshold (kept: at or above) and zeros.
  for (size_t i = 0; i < n; i += 97) g[i] = i % 2 ? -2.0f : 30.0f, e0[i] = 0.0f;
  for (size_t i = 5; i < n; i += 89) g[i] = 0.0f, e0[i] = -0.0f;
  for (const int32_t t : {0, static_cast<int32_t>(magnitudeKey(2.0f)), static_cast<int32_t>(magnitudeKey(30.0f)),
                          0x7fffffff}) {
    for (const size_t cap : {size_t{16}, size_t{100}, n}) {
      // The scalar reference, one element at a time.
      std::vector<uint32_t> want;
      std::vector<float> y(n);
      for (size_t i = 0; i < n; ++i) {
        y[i] = g[i] + e0[i];
        if (static_cast<int32_t>(magnitudeKey(y[i])) >= t) want.push_back(static_cast<uint32_t>(i));
      }
      for (const auto& [name, scans] : paths) {
        for (const bool add : {true, false}) {
          std::vector<float> e = e0;
          std::vector<uint32_t> cand(cap, 0xffffffffu);
          std::vector<float> vals(cap, 12345.0f);
          size_t found = 0;
          const size_t done =
              add ? scans.first(g.data(), e.data(), e.data(), n, t, cand.data(), vals.data(), cap, &found)
                  : scans.second(nullptr, y.data(), nullptr, n, t, cand.data(), vals.data(), cap, &found);
          ASSERT_LE(found, cap) << name;
          if (want.size() <= cap) {
            ASSERT_EQ(done, n) << name << " t=" << t << " cap=" << cap;
            cand.resize(found);
            EXPECT_EQ(cand, want) << name << " add=" << add << " t=" << t;
          } else {
            ASSERT_LT(done, n) << name << " t=" << t << " cap=" << cap;
            for (size_t j = 0; j < found; ++j) ASSERT_EQ(cand[j], want[j]) << name;
            ASSERT_GE(std::count_if(want.begin(), want.end(), [&](uint32_t i) { return i < done; }),
                      static_cast<std::ptrdiff_t>(found));
          }
          for (size_t j = 0; j < found; ++j)
            ASSERT_EQ(floatBits(vals[j]), floatBits(y[cand[j]])) << name << " candidate " << j;
          if (add) {
            for (size_t i = 0; i < n; ++i)
              ASSERT_EQ(floatBits(e[i]), floatBits(i < done ? y[i] : e0[i])) << name << " element " << i;
          }
        }
      }
    }
  }
}

TEST(TopK, SelectedCountIsCeilOfRatio) {
  CodecParams p = parseCodecSpec("topk:0.01");
  EXPECT_EQ(selectedCount(p, 0), 0u);
  EXPECT_EQ(selectedCount(p, 1), 1u);
  EXPECT_EQ(selectedCount(p, 100), 1u);
  EXPECT_EQ(selectedCount(p, 101), 2u);
  EXPECT_EQ(selectedCount(p, 64u << 20), 671089u);
}

TEST(RandK, IndicesAgreeAcrossRanks) {
  const CodecParams p = parseCodecSpec("randk:0.05");
  const size_t n = 10001;
  std::vector<float> x0 = test::normalInput(n, 1), x1 = test::normalInput(n, 2);
  std::vector<uint64_t> i0(selectedCount(p, n)), i1(i0.size());
  randkIndicesCpu(p, n, 1234, 9, 500, i0.data());
  randkIndicesCpu(p, n, 1234, 9, 500, i1.data());
  EXPECT_EQ(i0, i1);
  // Distinct, sorted, in range, one per stratum.
  for (size_t j = 0; j < i0.size(); ++j) {
    ASSERT_LT(i0[j], n);
    ASSERT_GE(i0[j], randkStratumBegin(j, n, i0.size()));
    ASSERT_LT(i0[j], randkStratumBegin(j + 1, n, i0.size()));
  }
  // Encoded by two ranks with different data: the same positions are sent.
  auto positions = [&](const std::vector<float>& x, uint32_t rank) {
    EncodeArgs a;
    a.input = x.data();
    a.count = n;
    a.seed = 1234;
    a.step = 9;
    a.rank = rank;
    a.chunkOffset = 500;
    auto dec = test::decodeToVector(p, a, test::encodeToVector(p, a));
    std::vector<uint64_t> at;
    for (size_t i = 0; i < n; ++i)
      if (dec[i] != 0.0f) at.push_back(i);
    return at;
  };
  EXPECT_EQ(positions(x0, 0), i0);
  EXPECT_EQ(positions(x1, 1), i0);
  // Another step chooses other indices.
  randkIndicesCpu(p, n, 1234, 10, 500, i1.data());
  EXPECT_NE(i0, i1);
}

TEST(RandK, GatherAndScatterMatchThePayloadPath) {
  const CodecParams p = parseCodecSpec("randk:0.1:rescale");
  std::vector<float> x = test::normalInput(3001, 4);
  std::vector<float> e1(x.size(), 0.5f), e2 = e1;
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  a.seed = 8;
  a.residual = e1.data();
  std::vector<float> values(selectedCount(p, x.size()));
  randkGatherCpu(p, a, values.data());
  std::vector<float> viaScatter(x.size());
  randkScatterCpu(p, x.size(), 8, 0, 0, values.data(), viaScatter.data(), DecodeMode::Overwrite);
  a.residual = e2.data();
  auto viaPayload = test::decodeToVector(p, a, test::encodeToVector(p, a));
  EXPECT_EQ(viaScatter, viaPayload);
  EXPECT_EQ(e1, e2);
}

TEST(RandK, RescaledIsUnbiased) {
  const CodecParams p = parseCodecSpec("randk:0.25:rescale");
  std::vector<float> x = test::normalInput(64, 5);
  std::vector<double> sum(x.size(), 0.0);
  const int runs = 20000;
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  for (int s = 0; s < runs; ++s) {
    a.step = s;
    auto dec = test::decodeToVector(p, a, test::encodeToVector(p, a));
    for (size_t i = 0; i < x.size(); ++i) sum[i] += dec[i];
  }
  for (size_t i = 0; i < x.size(); ++i) {
    // Each value is kept w.p. 1/4 and scaled by 4: std dev sqrt(3) |x| per run.
    const double se = std::sqrt(3.0) * std::fabs(x[i]) / std::sqrt(runs);
    EXPECT_NEAR(sum[i] / runs, x[i], 5 * se + 1e-12) << i;
  }
}

}  // namespace
}  // namespace sqz
