// Round-trip error of every codec within its proven bound, and the error
// feedback invariant decode(payload) + e' == g + e (one fp32 rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/codec_math.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

using test::InputCase;

// Largest error the codec may make on element i of x (already g + e).
struct Bound {
  const CodecParams& p;
  const std::vector<float>& x;
  const std::vector<float>& dec;

  double at(size_t i) const {
    const double v = std::fabs(static_cast<double>(x[i]));
    switch (p.kind) {
      case CodecKind::None: return 0.0;
      case CodecKind::Bf16: return std::ldexp(v, -8);
      case CodecKind::Fp16: return std::max(std::ldexp(v, -11), std::ldexp(1.0, -25));
      case CodecKind::Quant: {
        const size_t b0 = i / p.blockSize * p.blockSize, b1 = std::min(x.size(), b0 + p.blockSize);
        double lo = x[b0], hi = x[b0];
        for (size_t j = b0; j < b1; ++j) lo = std::min<double>(lo, x[j]), hi = std::max<double>(hi, x[j]);
        const double delta = (hi - lo) / maxCode(p.bits);
        const double mag = std::max(std::fabs(lo), std::fabs(hi));
        // One step (stochastic) or half a step (nearest), plus the fp32
        // rounding of lo + code * delta.
        return delta * (p.stochastic ? 1.0 : 0.5) * (1.0 + 1e-5) + mag * 1e-6;
      }
      case CodecKind::Sign: {
        // dec = +-s with s = sum x^2 / sum |x| (<= its largest |x|): the
        // exact block error is checked by sign_test.cc.
        const size_t b0 = i / p.blockSize * p.blockSize, b1 = std::min(x.size(), b0 + p.blockSize);
        double m = 0, sq = 0;
        for (size_t j = b0; j < b1; ++j) m = std::max(m, std::fabs(static_cast<double>(x[j]))), sq += double(x[j]) * x[j];
        // Rotated (sign:rot): the decoded block's norm is ||x|| / sqrt(delta)
        // <= ||x|| sqrt(len), which bounds each of its elements
        // (sign_rotation_test.cc checks the exact error).
        if (p.rotate) return v + std::sqrt(sq * static_cast<double>(b1 - b0)) * (1.0 + 1e-5);
        return v + m * (1.0 + 1e-6);
      }
      case CodecKind::TopK:
      case CodecKind::RandK: {
        if (dec[i] == 0.0f) return v;  // not sent: the whole value is the error
        if (p.kind == CodecKind::RandK && p.rescale) return 1e30;  // checked by the unbiasedness test
        if (p.values == ValueFormat::Bf16) return std::ldexp(v, -8);
        if (p.values == ValueFormat::Int8) {
          double m = 0;
          for (float y : x) m = std::max(m, std::fabs(static_cast<double>(y)));
          return m / 127.0 / 2.0 * (1.0 + 1e-5) + m * 1e-6;
        }
        return 0.0;
      }
    }
    return 0.0;
  }
};

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, ErrorWithinBoundOnEveryInput) {
  const CodecParams p = parseCodecSpec(GetParam());
  for (const InputCase& in : test::standardInputs()) {
    EncodeArgs a;
    a.input = in.data.data();
    a.count = in.data.size();
    a.seed = 42;
    a.step = 7;
    a.rank = 3;
    a.chunkOffset = 1000;
    auto payload = test::encodeToVector(p, a);
    ASSERT_EQ(payload.size(), encodedBytes(p, a.count)) << in.name;
    auto dec = test::decodeToVector(p, a, payload);
    Bound bound{p, in.data, dec};
    size_t nonzero = 0;
    for (size_t i = 0; i < in.data.size(); ++i) {
      ASSERT_LE(std::fabs(static_cast<double>(dec[i]) - in.data[i]), bound.at(i))
          << GetParam() << " " << in.name << " i=" << i << " x=" << in.data[i] << " dec=" << dec[i];
      nonzero += dec[i] != 0.0f;
    }
    if (p.kind == CodecKind::TopK || p.kind == CodecKind::RandK) {
      EXPECT_LE(nonzero, selectedCount(p, a.count));
    }
    // Accumulate adds exactly what overwrite writes.
    std::vector<float> acc(in.data.size(), 1.0f);
    decodeCpu(test::expectFor(p, a), payload.data(), payload.size(), acc.data(), DecodeMode::Accumulate);
    for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], 1.0f + dec[i]) << GetParam() << " " << in.name;
  }
}

TEST_P(RoundTrip, ErrorFeedbackLosesNothing) {
  const CodecParams p = parseCodecSpec(GetParam());
  for (const InputCase& in : test::standardInputs()) {
    std::vector<float> e = test::normalInput(in.data.size(), 9, 0.01f);
    std::vector<float> y(in.data.size());
    for (size_t i = 0; i < y.size(); ++i) y[i] = in.data[i] + e[i];
    EncodeArgs a;
    a.input = in.data.data();
    a.count = in.data.size();
    a.residual = e.data();
    a.seed = 5;
    auto payload = test::encodeToVector(p, a);
    auto dec = test::decodeToVector(p, a, payload);
    if (p.kind == CodecKind::RandK && p.rescale) {
      // Unbiased, without error feedback (RandK.RescaledIsUnbiased): e' = 0.
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(e[i], 0.0f) << GetParam() << " " << in.name << " i=" << i;
      continue;
    }
    for (size_t i = 0; i < y.size(); ++i) {
      // e' = fl(y - dec): the only error is that one rounding.
      const double exact = static_cast<double>(y[i]) - dec[i];
      ASSERT_LE(std::fabs(static_cast<double>(dec[i]) + e[i] - y[i]), std::ldexp(std::fabs(exact), -24) + 1e-45)
          << GetParam() << " " << in.name << " i=" << i;
    }
  }
}

TEST_P(RoundTrip, HalfInputsEncodeLikeTheirFloatValues) {
  const CodecParams p = parseCodecSpec(GetParam());
  std::vector<float> x = test::heavyTailedInput(1500, 11);
  for (sqzDataType_t t : {sqzFloat16, sqzBfloat16}) {
    std::vector<uint16_t> h(x.size());
    std::vector<float> asFloat(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      h[i] = t == sqzFloat16 ? floatToFp16(x[i]) : floatToBf16(x[i]);
      asFloat[i] = t == sqzFloat16 ? fp16ToFloat(h[i]) : bf16ToFloat(h[i]);
    }
    std::vector<float> e1(x.size(), 0.001f), e2 = e1;
    EncodeArgs a;
    a.count = x.size();
    a.seed = 77;
    a.input = h.data();
    a.dtype = t;
    a.residual = e1.data();
    auto p1 = test::encodeToVector(p, a);
    a.input = asFloat.data();
    a.dtype = sqzFloat32;
    a.residual = e2.data();
    auto p2 = test::encodeToVector(p, a);
    EXPECT_EQ(p1, p2) << GetParam();
    EXPECT_EQ(e1, e2) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, RoundTrip, ::testing::ValuesIn(test::allCodecSpecs()),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
                           return s;
                         });

TEST(RoundTrip, StatsBlockTravelsWithThePayload) {
  const CodecParams p = parseCodecSpec("q4");
  std::vector<float> x = test::normalInput(3000, 4);
  GradStats s;
  clearStats(&s);
  gradStatsCpu(x.data(), sqzFloat32, nullptr, x.size(), &s);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  a.stats = &s;
  auto payload = test::encodeToVector(p, a);
  EXPECT_EQ(payload.size(), encodedBytes(p, x.size(), true));
  GradStats got;
  std::vector<float> out(x.size());
  decodeCpu(test::expectFor(p, a), payload.data(), payload.size(), out.data(), DecodeMode::Overwrite, &got);
  EXPECT_EQ(0, std::memcmp(&got, &s, sizeof s));
}

TEST(RoundTrip, EncodeIsDeterministic) {
  for (const std::string& spec : test::allCodecSpecs()) {
    const CodecParams p = parseCodecSpec(spec);
    std::vector<float> x = test::normalInput(2049, 8);
    EncodeArgs a;
    a.input = x.data();
    a.count = x.size();
    a.seed = 1;
    EXPECT_EQ(test::encodeToVector(p, a), test::encodeToVector(p, a)) << spec;
  }
}

}  // namespace
}  // namespace sqz
