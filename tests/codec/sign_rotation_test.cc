// sign:rot, the scaled sign after a randomized Hadamard rotation per block
// (kernels/cpu_sign_rotation.h): the rotation is orthonormal and keyed by
// (seed, step, rank, block position); the payload decodes to the rotated-back
// scaled signs of the rotated block, with the sign's exact error in the
// rotated domain; error feedback's residual is taken in the gradient's own
// domain; any decoder inverts any rank's payload (the key travels in it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/codec_math.h"
#include "kernels/cpu_sign_rotation.h"
#include "kernels/grad_stats.h"
#include "kernels/sign_rotation_math.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

double norm2(const std::vector<float>& v, size_t b0 = 0, size_t b1 = SIZE_MAX) {
  double s = 0;
  for (size_t i = b0; i < std::min(b1, v.size()); ++i) s += static_cast<double>(v[i]) * v[i];
  return s;
}

TEST(SignRotation, IsOrthonormalAtEveryLength) {
  for (size_t n : {1u, 2u, 7u, 32u, 96u, 255u, 256u, 1024u}) {
    const std::vector<float> x = test::normalInput(n, static_cast<uint32_t>(n));
    std::vector<float> z = x;
    rotateSignBlock(z.data(), n, 0x1234u + n);
    EXPECT_NEAR(norm2(z), norm2(x), 1e-5 * norm2(x)) << n;  // norm kept
    size_t moved = 0;
    for (size_t i = 0; i < n; ++i) moved += std::fabs(z[i] - x[i]) > 1e-3f ? 1 : 0;
    if (n >= 32) {
      EXPECT_GT(moved, n / 2) << n << ": the rotation left the block mostly as it was";
    }
    unrotateSignBlock(z.data(), n, 0x1234u + n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(z[i], x[i], 1e-5f * (1.0f + std::fabs(x[i]))) << n << " at " << i;
    // The inverse needs the same key.
    std::vector<float> w = x;
    rotateSignBlock(w.data(), n, 0x1234u + n);
    unrotateSignBlock(w.data(), n, 0x9999u + n);
    double off = 0;
    for (size_t i = 0; i < n; ++i) off += (w[i] - x[i]) * (w[i] - x[i]);
    if (n >= 32) {
      EXPECT_GT(off, 0.1 * norm2(x)) << n;
    }
  }
}

// A spike spreads evenly over a block of 256: every |value| is 1/16.
TEST(SignRotation, SpreadsASpikeOverItsBlock) {
  std::vector<float> x(256, 0.0f);
  x[37] = 1.0f;
  rotateSignBlock(x.data(), x.size(), 42);
  for (float v : x) EXPECT_EQ(std::fabs(v), 1.0f / 16.0f);
}

TEST(SignRotation, KeysDifferAcrossRanksStepsSeedsAndBlocks) {
  const uint64_t k = signRotationKey(1, 5, 0);
  EXPECT_NE(k, signRotationKey(1, 5, 1));
  EXPECT_NE(k, signRotationKey(1, 6, 0));
  EXPECT_NE(k, signRotationKey(2, 5, 0));
  EXPECT_NE(signRotationKey(0, 0, 0), signRotationKey(0, 0, 1));
  EXPECT_NE(signRotationBlockKey(k, 0), signRotationBlockKey(k, 256));
  EXPECT_EQ(signRotationKey(1, 5, 3), signRotationKey(1, 5, 3));
  // Different keys rotate differently.
  const std::vector<float> x = test::normalInput(256, 9);
  std::vector<float> a = x, b = x;
  rotateSignBlock(a.data(), 256, signRotationBlockKey(k, 0));
  rotateSignBlock(b.data(), 256, signRotationBlockKey(signRotationKey(1, 5, 1), 0));
  EXPECT_NE(a, b);
}

// Decoded = R^T (+-s) with s the sign's scale of z = R y: rotating the
// decoding forward gives +-s following z's signs, its error is
// signBlockErrorSq in the rotated domain (the same norm in y's: R is
// orthonormal), orthogonal to y, and the residual is y - decoded.
TEST(SignRotation, RoundTripIsTheSignOfTheRotatedBlock) {
  for (const auto& in : test::standardInputs()) {
    for (size_t B : {256u, 96u}) {
      const CodecParams p = parseCodecSpec(B == 256 ? "sign:rot" : "sign:block=96:rot");
      EncodeArgs a;
      a.input = in.data.data();
      a.count = in.data.size();
      a.seed = 77, a.step = 3, a.rank = 2, a.chunkOffset = 4096;
      std::vector<float> e(a.count, 0.0f);
      a.residual = e.data();
      const std::vector<uint8_t> payload = test::encodeToVector(p, a);
      const std::vector<float> dec = test::decodeToVector(p, a, payload);
      const uint64_t key = signRotationKey(a.seed, a.step, a.rank);
      for (size_t b0 = 0; b0 < a.count; b0 += B) {
        const size_t n = std::min(B, a.count - b0);
        const uint64_t bk = signRotationBlockKey(key, a.chunkOffset + b0);
        std::vector<float> z(in.data.begin() + b0, in.data.begin() + b0 + n), d(dec.begin() + b0, dec.begin() + b0 + n);
        rotateSignBlock(z.data(), n, bk);
        rotateSignBlock(d.data(), n, bk);
        double sumAbs = 0, sumSq = 0;
        for (float v : z) sumAbs += std::fabs(v), sumSq += double(v) * v;
        const double s = sumAbs > 0 ? sumSq / sumAbs : 0.0;
        double err = 0, along = 0;
        for (size_t i = 0; i < n; ++i) {
          EXPECT_NEAR(std::fabs(d[i]), s, 1e-5 * s + 1e-30) << in.name << " block " << b0 << " at " << i;
          if (std::fabs(z[i]) > 1e-4 * s) {
            EXPECT_EQ(z[i] >= 0, d[i] >= 0) << in.name << " block " << b0 << " at " << i;
          }
          const double x = in.data[b0 + i];
          err += (x - dec[b0 + i]) * (x - dec[b0 + i]);
          along += (x - dec[b0 + i]) * x;
          EXPECT_NEAR(e[b0 + i], x - dec[b0 + i], 1e-5 * (std::fabs(x) + s)) << "residual, " << in.name;
        }
        const double want = signBlockErrorSq(sumSq, sumAbs, static_cast<double>(n), s);
        EXPECT_NEAR(err, want, 1e-4 * (sumSq + err) + 1e-30) << in.name << " block " << b0;
        EXPECT_NEAR(along, 0.0, 1e-4 * sumSq + 1e-30) << in.name << " block " << b0;
      }
    }
  }
}

// After the rotation a block's delta is near 2/pi whatever its shape: a
// spike block, which the plain sign decodes with error (len - 1) ||y||^2,
// costs the rotated sign nothing.
TEST(SignRotation, ErrorNoLongerDependsOnTheBlocksShape) {
  std::vector<float> spike(256 * 64, 0.0f);
  for (size_t b = 0; b < 64; ++b) spike[b * 256 + (b * 37) % 256] = 1.0f + b;
  const std::vector<float> normal = test::normalInput(256 * 64, 5);
  for (const std::vector<float>* x : std::initializer_list<const std::vector<float>*>{&spike, &normal}) {
    EncodeArgs a;
    a.input = x->data();
    a.count = x->size();
    const CodecParams rot = parseCodecSpec("sign:rot"), plain = parseCodecSpec("sign");
    const std::vector<float> dr = test::decodeToVector(rot, a, test::encodeToVector(rot, a));
    const std::vector<float> dp = test::decodeToVector(plain, a, test::encodeToVector(plain, a));
    double er = 0, ep = 0;
    for (size_t i = 0; i < x->size(); ++i) er += ((*x)[i] - dr[i]) * ((*x)[i] - dr[i]), ep += ((*x)[i] - dp[i]) * ((*x)[i] - dp[i]);
    EXPECT_LT(er, 0.65 * norm2(*x));
    if (x == &spike) {
      EXPECT_GT(ep, 100 * norm2(*x));
    }
  }
}

// The key travels in the payload: a decoder that knows nothing of the
// encoder's rank or step decodes it, and chunking a buffer does not change
// how its blocks rotate (each block's key follows its position).
TEST(SignRotation, AnyDecoderInvertsAnyRanksPayloadAndChunksAgree) {
  const CodecParams p = parseCodecSpec("sign:rot");
  const std::vector<float> x = test::normalInput(4096, 8);
  EncodeArgs whole;
  whole.input = x.data();
  whole.count = x.size();
  whole.seed = 5, whole.step = 9, whole.rank = 3;
  const std::vector<float> dw = test::decodeToVector(p, whole, test::encodeToVector(p, whole));
  EncodeArgs tail = whole;
  tail.input = x.data() + 1024;
  tail.count = 3072;
  tail.chunkOffset = 1024;
  DecodeExpect ex = test::expectFor(p, tail);
  ex.seed = 0, ex.step = 0;  // what a decoder knows of the encoder does not matter
  const std::vector<uint8_t> pt = test::encodeToVector(p, tail);
  std::vector<float> dt(3072);
  decodeCpu(ex, pt.data(), pt.size(), dt.data(), DecodeMode::Overwrite);
  for (size_t i = 0; i < 3072; ++i) EXPECT_EQ(dt[i], dw[1024 + i]) << i;
  // Another rank's payload of the same data decodes to another rotation's
  // signs: the key is per rank.
  EncodeArgs other = whole;
  other.rank = 0;
  EXPECT_NE(test::decodeToVector(p, other, test::encodeToVector(p, other)), dw);
  // The plain sign's expectation does not accept a rotated payload.
  const std::vector<uint8_t> pw = test::encodeToVector(p, whole);
  DecodeExpect plain = test::expectFor(parseCodecSpec("sign"), whole);
  std::vector<float> out(x.size());
  EXPECT_THROW(decodeCpu(plain, pw.data(), pw.size(), out.data(), DecodeMode::Overwrite), Error);
}

// The part of sign:rot's error that every rank makes alike (the gain
// model's commonErrorLag, src/tuner/README.md section 6) is its error on a
// given input averaged over the rotation's keys (ranks and calls). Where
// the rotated block is near Gaussian (a normal input) that mean is 0 (the
// error is orthogonal to y for every key, and Bussgang's theorem puts its
// mean along y): the mean error of K keys has about 1/K of one encoding's
// squared error. Where one value dominates its block (heavy tails) it is
// not: every key's signs follow the spike, and the rest of the block is
// lost alike, so the rotation does not remove the common part there and
// the model cannot take it as 0 for sign:rot. The plain sign's mean error
// is its one deterministic error, whatever K.
TEST(SignRotation, ErrorAveragesOutOverKeys) {
  for (const char* shape : {"normal", "heavy"}) {
    const size_t n = 4096;
    const std::vector<float> y =
        std::string(shape) == "normal" ? test::normalInput(n, 31) : test::heavyTailedInput(n, 32);
    for (const char* spec : {"sign:rot", "sign"}) {
      const CodecParams p = parseCodecSpec(spec);
      const int K = 64;
      std::vector<double> mean(n, 0.0);
      double single = 0.0;  // mean over keys of one encoding's squared error
      for (int k = 0; k < K; ++k) {
        EncodeArgs a;
        a.input = y.data();
        a.count = n;
        a.seed = 77;
        a.step = static_cast<uint64_t>(k);
        a.rank = static_cast<uint32_t>(k % 4);
        const std::vector<float> d = test::decodeToVector(p, a, test::encodeToVector(p, a));
        for (size_t i = 0; i < n; ++i) {
          const double e = static_cast<double>(d[i]) - y[i];
          mean[i] += e / K;
          single += e * e / K;
        }
      }
      double meanSq = 0.0;
      for (double m : mean) meanSq += m * m;
      if (p.rotate && std::string(shape) == "normal") {
        EXPECT_LT(meanSq, 2.0 * single / K) << shape << ": the rotated sign's error has a common part";
      } else if (p.rotate) {
        EXPECT_GT(meanSq, 10.0 * single / K) << shape << ": the common part vanished (revisit commonErrorLag)";
      } else {
        EXPECT_NEAR(meanSq, single, 1e-9 * single) << shape << ": the plain sign's error is one vector";
      }
    }
  }
}

// signRotationBlockErrors against hand-computed values (src/tuner/README.md
// section 6): t = |y_max| / ||rest||, F = erf(t / sqrt 2), u = sqrt(2 / pi)
// exp(-t^2 / 2); common = ||y||^2 (F - t u)^2 / (t F + u)^2, one key's error
// ||y||^2 ((1 + t^2) / (t F + u)^2 - 1).
TEST(SignRotation, BlockErrorsFromShapeHandComputed) {
  double common = -1, error = -1;
  // ||y||^2 = 8, largest 4: t = 1, F = 0.682689492137, u = 0.483941449038,
  // F - t u = 0.198748043, (t F + u)^2 = 1.166630941^2 = 1.361027796:
  // common 8 * 0.039500800 / 1.361027796 = 0.232182097,
  // error 8 * (2 / 1.361027796 - 1) = 3.755822000.
  signRotationBlockErrors(8.0, 4.0, &common, &error);
  EXPECT_NEAR(common, 0.2321820965, 1e-9);
  EXPECT_NEAR(error, 3.7558219998, 1e-9);
  // ||y||^2 = 20, largest 16: t = 2, F = 0.954499736, u = 0.107981933.
  signRotationBlockErrors(20.0, 16.0, &common, &error);
  EXPECT_NEAR(common, 2.6814480891, 1e-9);
  EXPECT_NEAR(error, 4.5808112032, 1e-9);
  // No dominant value (t -> 0): nothing common (Bussgang), one key's error
  // pi / 2 - 1 of ||y||^2 (the sign of a Gaussian block).
  signRotationBlockErrors(1.0, 1e-12, &common, &error);
  EXPECT_LT(common, 1e-30);
  EXPECT_NEAR(error, M_PI / 2 - 1, 1e-9);
  // One value: rotated flat, signed exactly. An empty block: nothing.
  signRotationBlockErrors(4.0, 4.0, &common, &error);
  EXPECT_EQ(common, 0.0);
  EXPECT_EQ(error, 0.0);
  signRotationBlockErrors(0.0, 0.0, &common, &error);
  EXPECT_EQ(common, 0.0);
  EXPECT_EQ(error, 0.0);
}

// The statistic against the codec itself: blocks of 256 made of one value
// t times the norm of a normal rest (t = 0: a normal block), each encoded
// with K keys; the error common to all keys, ||E_K[e]||^2, estimated
// without the 1/K bias of a finite mean as (||sum e||^2 - sum ||e||^2) /
// (K (K - 1)), and the mean of one key's ||e||^2, against what the
// statistics pass (gradStatsCpu: signRotCommon, signRotError) predicts.
TEST(SignRotation, StatisticsPredictTheErrorOverKeys) {
  const size_t n = kStatsBlockSize;
  const CodecParams p = parseCodecSpec("sign:rot");
  const int K = 400;
  for (double t : {0.0, 0.5, 1.0, 2.0, 4.0}) {
    std::vector<float> y = test::normalInput(n, static_cast<uint32_t>(100 + 10 * t));
    const size_t at = static_cast<size_t>(17 + 40 * t);
    y[at] = 0.0f;
    // Negative, so the statistics must take the largest magnitude, not value.
    y[at] = -static_cast<float>(t * std::sqrt(norm2(y)));
    GradStats st;
    clearStats(&st);
    gradStatsCpu(y.data(), sqzFloat32, nullptr, n, &st);
    std::vector<double> sum(n, 0.0);
    double sumSq = 0.0;
    for (int k = 0; k < K; ++k) {
      EncodeArgs a;
      a.input = y.data();
      a.count = n;
      a.seed = 5;
      a.step = static_cast<uint64_t>(k);
      const std::vector<float> d = test::decodeToVector(p, a, test::encodeToVector(p, a));
      for (size_t i = 0; i < n; ++i) {
        const double e = static_cast<double>(d[i]) - y[i];
        sum[i] += e;
        sumSq += e * e;
      }
    }
    double sumNorm = 0.0;
    for (double v : sum) sumNorm += v * v;
    const double common = (sumNorm - sumSq) / (static_cast<double>(K) * (K - 1)), error = sumSq / K;
    const double yy = norm2(y);
    EXPECT_NEAR(st.signRotCommon, common, 0.1 * common + 2e-3 * yy) << "t = " << t;
    EXPECT_NEAR(st.signRotError, error, 0.05 * error) << "t = " << t;
  }
}

TEST(SignRotation, SpecAndWire) {
  EXPECT_TRUE(parseCodecSpec("sign:rot").rotate);
  EXPECT_FALSE(parseCodecSpec("sign").rotate);
  EXPECT_EQ(codecName(parseCodecSpec("sign:block=64:rot")), "sign:block=64:rot");
  EXPECT_THROW(parseCodecSpec("q4:rot"), Error);
  CodecParams bad = parseCodecSpec("q4");
  bad.rotate = true;
  EXPECT_NE(checkCodecParams(bad), nullptr);
  // 8 bytes of key after the scales (16-byte aligned sections).
  EXPECT_EQ(encodedBytes(parseCodecSpec("sign:rot"), 1024), encodedBytes(parseCodecSpec("sign"), 1024) + 16);
}

}  // namespace
}  // namespace sqz
