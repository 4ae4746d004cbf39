// Stochastic rounding is unbiased, and the RNG depends only on the global
// element index: chunking a buffer does not change the numbers drawn.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/philox.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

// Philox4x32-10 known-answer vector from the Random123 distribution (kat_vectors).
TEST(Philox, MatchesReferenceVector) {
  Philox4 r = philox4x32(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(r.v[0], 0xd16cfe09u);
  EXPECT_EQ(r.v[1], 0x94fdcceb);
  EXPECT_EQ(r.v[2], 0x5001e420u);
  EXPECT_EQ(r.v[3], 0x24126ea1u);
  Philox4 z = philox4x32(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(z.v[0], 0x6627e8d5u);
  EXPECT_EQ(z.v[1], 0xe169c58du);
  EXPECT_EQ(z.v[2], 0xbc57ac4cu);
  EXPECT_EQ(z.v[3], 0x9b00dbd8u);
}

// Mean |average decode - x| after `runs` seeds, and the worst element's
// deviation in units of its standard error.
struct BiasResult {
  double meanAbs;
  double worstSigmas;
};

BiasResult biasAfter(const CodecParams& p, const std::vector<float>& x, int runs) {
  std::vector<double> sum(x.size(), 0.0);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  for (int s = 0; s < runs; ++s) {
    a.seed = 1000 + s;
    auto dec = test::decodeToVector(p, a, test::encodeToVector(p, a));
    for (size_t i = 0; i < x.size(); ++i) sum[i] += dec[i];
  }
  BiasResult r{0.0, 0.0};
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t b0 = i / p.blockSize * p.blockSize, b1 = std::min(x.size(), b0 + p.blockSize);
    double lo = x[b0], hi = x[b0];
    for (size_t j = b0; j < b1; ++j) lo = std::min<double>(lo, x[j]), hi = std::max<double>(hi, x[j]);
    const double delta = (hi - lo) / maxCode(p.bits);
    const double dev = std::fabs(sum[i] / runs - x[i]);
    r.meanAbs += dev / x.size();
    if (delta > 0) r.worstSigmas = std::max(r.worstSigmas, dev / (delta / 2 / std::sqrt(runs)));
  }
  return r;
}

TEST(Stochastic, QuantizationIsUnbiased) {
  for (const char* spec : {"q1", "q2", "q4", "q8"}) {
    const CodecParams p = parseCodecSpec(spec);
    std::vector<float> x = test::normalInput(600, 21);
    BiasResult r100 = biasAfter(p, x, 100);
    BiasResult r1600 = biasAfter(p, x, 1600);
    // Standard error bound delta/2/sqrt(runs); 600 elements stay within 5.5 of it.
    EXPECT_LT(r100.worstSigmas, 5.5) << spec;
    EXPECT_LT(r1600.worstSigmas, 5.5) << spec;
    // 16x the runs: the error shrinks about 4x (1/sqrt(runs)), not to a floor.
    const double ratio = r100.meanAbs / r1600.meanAbs;
    EXPECT_GT(ratio, 2.5) << spec;
    EXPECT_LT(ratio, 6.5) << spec;
  }
}

TEST(Stochastic, RoundToNearestIsDeterministicAcrossSeeds) {
  const CodecParams p = parseCodecSpec("q4:rn");
  std::vector<float> x = test::normalInput(1000, 5);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  a.seed = 1;
  auto p1 = test::encodeToVector(p, a);
  a.seed = 2;
  a.rank = 9;
  EXPECT_EQ(p1, test::encodeToVector(p, a));
}

TEST(Stochastic, ChunkingDoesNotChangeTheDraws) {
  const CodecParams p = parseCodecSpec("q2:block=64");
  std::vector<float> x = test::normalInput(64 * 37 + 5, 6);
  EncodeArgs whole;
  whole.input = x.data();
  whole.count = x.size();
  whole.seed = 99;
  whole.step = 3;
  whole.rank = 1;
  whole.chunkOffset = 640;  // itself a chunk of some larger buffer
  auto ref = test::decodeToVector(p, whole, test::encodeToVector(p, whole));
  // Chunk boundaries on block boundaries, with odd group alignment too.
  for (size_t split : {64u * 5, 64u * 21, 64u * 37}) {
    EncodeArgs a = whole, b = whole;
    a.count = split;
    b.input = x.data() + split;
    b.count = x.size() - split;
    b.chunkOffset = whole.chunkOffset + split;
    auto da = test::decodeToVector(p, a, test::encodeToVector(p, a));
    auto db = test::decodeToVector(p, b, test::encodeToVector(p, b));
    da.insert(da.end(), db.begin(), db.end());
    EXPECT_EQ(da, ref) << split;
  }
}

TEST(Stochastic, DifferentRanksAndStepsDrawDifferently) {
  const CodecParams p = parseCodecSpec("q1");
  std::vector<float> x = test::normalInput(4096, 7);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  auto base = test::encodeToVector(p, a);
  EncodeArgs b = a;
  b.rank = 1;
  EXPECT_NE(base, test::encodeToVector(p, b));
  b = a;
  b.step = 1;
  EXPECT_NE(base, test::encodeToVector(p, b));
}

}  // namespace
}  // namespace sqz
