// The statistics pass and gain(): against brute force, across ranks, and
// with non-finite values.
#include "kernels/grad_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

GradStats statsOf(const std::vector<float>& x, const float* e = nullptr) {
  GradStats s;
  clearStats(&s);
  gradStatsCpu(x.data(), sqzFloat32, e, x.size(), &s);
  return s;
}

TEST(GradStats, TopKGainMatchesBruteForceWithinOneBin) {
  for (const auto& in : test::standardInputs()) {
    const GradStats s = statsOf(in.data);
    std::vector<double> sq;
    for (float v : in.data) sq.push_back(static_cast<double>(v) * v);
    std::vector<double> sorted = sq;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    double total = 0;
    for (double v : sq) total += v;
    EXPECT_NEAR(s.sumSq, total, 1e-9 * total) << in.name;
    for (double ratio : {0.001, 0.01, 0.1, 0.5, 1.0}) {
      const CodecParams p = parseCodecSpec("topk:" + std::to_string(ratio));
      const size_t k = selectedCount(p, in.data.size());
      double kept = 0;
      for (size_t i = 0; i < k; ++i) kept += sorted[i];
      const double exact = total > 0 ? kept / total : 1.0;
      // The histogram cannot tell values apart inside the bin where the
      // k-th largest falls: it takes the `need` values it keeps from that
      // bin at the bin's mean square, the exact answer at their own; both
      // lie between need x the bin's smallest and largest square.
      double tol = 1e-12;
      if (total > 0) {
        const int bin = statsBin(magnitudeKey(static_cast<float>(std::sqrt(sorted[k - 1]))));
        size_t above = 0, inBin = 0;
        double lo = INFINITY, hi = 0, sumAbove = 0, sumBin = 0;
        for (double v : sq) {
          const int b = statsBin(magnitudeKey(static_cast<float>(std::sqrt(v))));
          above += b > bin;
          sumAbove += b > bin ? v : 0.0;
          if (b == bin) lo = std::min(lo, v), hi = std::max(hi, v), sumBin += v, ++inBin;
        }
        tol += static_cast<double>(k - above) * (hi - lo) / total;
        // The answers of a gain that could not split the bin (the old
        // tolerance, the bin's whole share, let both pass) fail: leaving
        // the bin out misses `need` values of at least lo > hi - lo each
        // (a quarter octave apart); taking it whole adds inBin - need
        // values of at least lo, which exceed the tolerance when they
        // outweigh need x (hi - lo).
        const size_t need = k - above;
        if (need > 0 && need < inBin) {
          EXPECT_GT(std::fabs(sumAbove / total - exact), tol) << in.name << " ratio " << ratio << ": bin left out";
          if (static_cast<double>(inBin - need) * lo > static_cast<double>(need) * (hi - lo)) {
            EXPECT_GT(std::fabs((sumAbove + sumBin) / total - exact), tol)
                << in.name << " ratio " << ratio << ": bin whole";
          }
        }
      }
      EXPECT_NEAR(gain(s, p), exact, tol) << in.name << " ratio " << ratio;
    }
  }
}

TEST(GradStats, HistogramResolutionIsAQuarterOctave) {
  // Magnitudes spread over decades: the partial bin is small, gain is close.
  std::vector<float> x = test::heavyTailedInput(200000, 3);
  const GradStats s = statsOf(x);
  std::vector<double> sq;
  for (float v : x) sq.push_back(static_cast<double>(v) * v);
  std::sort(sq.begin(), sq.end(), std::greater<double>());
  double total = 0, kept = 0;
  for (double v : sq) total += v;
  for (size_t i = 0; i < 2000; ++i) kept += sq[i];
  EXPECT_NEAR(gain(s, parseCodecSpec("topk:0.01")), kept / total, 0.02);
  EXPECT_DOUBLE_EQ(statsBinLowerEdge(statsBin(magnitudeKey(1.0f))), 1.0);
  EXPECT_DOUBLE_EQ(statsBinLowerEdge(statsBin(magnitudeKey(1.0f)) + 1), 1.25);
}

TEST(GradStats, QuantGainIsOneOverOnePlusOmega) {
  std::vector<float> x = test::normalInput(kStatsBlockSize * 40 + 17, 4);
  const GradStats s = statsOf(x);
  for (unsigned bits : {1u, 2u, 4u, 8u}) {
    double var = 0, norm = 0;
    for (size_t b0 = 0; b0 < x.size(); b0 += kStatsBlockSize) {
      const size_t b1 = std::min(x.size(), b0 + kStatsBlockSize);
      auto [lo, hi] = std::minmax_element(x.begin() + b0, x.begin() + b1);
      const double d = (static_cast<double>(*hi) - *lo) / maxCode(bits);
      var += (b1 - b0) * d * d / 4;
    }
    for (float v : x) norm += static_cast<double>(v) * v;
    CodecParams p = parseCodecSpec("q" + std::to_string(bits));
    EXPECT_NEAR(gain(s, p), 1.0 / (1.0 + var / norm), 1e-9) << bits;
    // And the bound holds for the codec: E||Q(x)-x||^2 <= omega ||x||^2.
    double err = 0;
    const int runs = 20;
    for (int r = 0; r < runs; ++r) {
      EncodeArgs a;
      a.input = x.data();
      a.count = x.size();
      a.seed = r;
      auto dec = test::decodeToVector(p, a, test::encodeToVector(p, a));
      for (size_t i = 0; i < x.size(); ++i) err += (static_cast<double>(dec[i]) - x[i]) * (dec[i] - x[i]) / runs;
    }
    EXPECT_LE(err, var * 1.05) << bits;
  }
  // Fewer bits keep less.
  EXPECT_GT(gain(s, parseCodecSpec("q8")), gain(s, parseCodecSpec("q4")));
  EXPECT_GT(gain(s, parseCodecSpec("q4")), gain(s, parseCodecSpec("q2")));
  EXPECT_GT(gain(s, parseCodecSpec("q2")), gain(s, parseCodecSpec("q1")));
  EXPECT_GT(gain(s, parseCodecSpec("bf16")), gain(s, parseCodecSpec("q8")));
  EXPECT_DOUBLE_EQ(gain(s, parseCodecSpec("none")), 1.0);
  EXPECT_NEAR(gain(s, parseCodecSpec("randk:0.1")), 0.1, 1e-3);
}

TEST(GradStats, ReducesAcrossRanksByAddition) {
  std::vector<float> a = test::normalInput(5000, 1), b = test::heavyTailedInput(3000, 2);
  GradStats sa = statsOf(a), sb = statsOf(b);
  std::vector<float> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  // Concatenation at a block boundary: the sums are the same numbers.
  std::vector<float> a2(a.begin(), a.begin() + 4864);
  std::vector<float> rest(a.begin() + 4864, a.end());
  GradStats s1 = statsOf(a2), s2 = statsOf(rest);
  addStats(&s1, s2);
  EXPECT_NEAR(s1.sumSq, sa.sumSq, 1e-9 * sa.sumSq);
  EXPECT_EQ(s1.elements, sa.elements);
  for (int w = 0; w < GradStats::kQuantWidths; ++w) EXPECT_NEAR(s1.quantVar[w], sa.quantVar[w], 1e-9 * sa.quantVar[w]);
  for (int i = 0; i < GradStats::kBins; ++i) EXPECT_EQ(s1.binCount[i], sa.binCount[i]);
  GradStats sum = sa;
  addStats(&sum, sb);
  EXPECT_EQ(sum.elements, 8000);
  EXPECT_NEAR(sum.sumSq, sa.sumSq + sb.sumSq, 1e-12 * sum.sumSq);
  EXPECT_LE(sizeof(GradStats), 8192u);
}

TEST(GradStats, ResidualIsAddedFirst) {
  std::vector<float> g = test::normalInput(1000, 1), e = test::normalInput(1000, 2), y(1000);
  for (size_t i = 0; i < y.size(); ++i) y[i] = g[i] + e[i];
  GradStats s1 = statsOf(g, e.data()), s2 = statsOf(y);
  EXPECT_EQ(0, std::memcmp(&s1, &s2, sizeof s1));
}

TEST(GradStats, NonFiniteValuesAreCountedAndVetoCompression) {
  std::vector<float> x = test::normalInput(1000, 1);
  x[10] = NAN;
  x[500] = INFINITY;
  x[999] = -3e38f;  // beyond the quantizable range
  const GradStats s = statsOf(x);
  EXPECT_EQ(s.nonFinite, 3);
  EXPECT_TRUE(std::isfinite(s.sumSq));
  for (double v : s.quantVar) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(gain(s, parseCodecSpec("q4")), 0.0);
  EXPECT_EQ(gain(s, parseCodecSpec("topk:0.1")), 0.0);
}

TEST(GradStats, Fp16GainSeesOverflow) {
  std::vector<float> x = test::normalInput(1000, 1);
  EXPECT_GT(gain(statsOf(x), parseCodecSpec("fp16")), 0.99);
  x[3] = 70000.0f;
  EXPECT_EQ(gain(statsOf(x), parseCodecSpec("fp16")), 0.0);
  EXPECT_GT(gain(statsOf(x), parseCodecSpec("bf16")), 0.99);
}

}  // namespace
}  // namespace sqz
