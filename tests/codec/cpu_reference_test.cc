// The optimized CPU encoders (fused, vectorized, runtime-dispatched to
// AVX2/AVX-512/F16C) against a plain one-element-at-a-time reference written
// from the shared per-element math of kernels/codec_math.h, the same math the
// CUDA kernels use: every payload byte, every residual bit and the count of
// non-quantizable values must be identical. This is what keeps the CPU and
// GPU byte-identical when the CPU code is restructured for speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/codec_math.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

template <class T>
float inputAt(const void* p, size_t i) {
  return toFloat(static_cast<const T*>(p)[i]);
}

float yAt(const EncodeArgs& a, size_t i, const float* e0) {
  float g = a.dtype == sqzFloat16    ? inputAt<Fp16Bits>(a.input, i)
            : a.dtype == sqzBfloat16 ? inputAt<Bf16Bits>(a.input, i)
                                     : inputAt<float>(a.input, i);
  return e0 ? faddRn(g, e0[i]) : g;
}

// Reference quantizer: block range over quantizable values, one Philox call
// per aligned group of eight global indices, 16 bits per element.
struct RefOut {
  std::vector<uint8_t> params, body;
  std::vector<float> residual;
  size_t bad = 0;
};

RefOut referenceQuant(const CodecParams& p, const EncodeArgs& a, const float* e0) {
  const size_t B = p.blockSize, n = a.count;
  const size_t blocks = (n + B - 1) / B;
  RefOut r;
  r.params.assign(blocks * 8, 0);
  r.body.assign((n * p.bits + 7) / 8, 0);
  if (e0) r.residual.assign(n, 0.0f);
  const RngKey key = makeRngKey(a.seed, a.step, a.rank);
  const float maxc = static_cast<float>(maxCode(p.bits));
  for (size_t blk = 0; blk < blocks; ++blk) {
    const size_t s = blk * B, m = std::min(B, n - s);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = s; i < s + m; ++i) {
      const float y = yAt(a, i, e0);
      if (!quantizable(y)) {
        ++r.bad;
        continue;
      }
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
    const QuantBlock qb = makeQuantBlock(lo, hi, p.bits);
    std::memcpy(&r.params[8 * blk], &qb.lo, 4);
    std::memcpy(&r.params[8 * blk + 4], &qb.delta, 4);
    for (size_t i = s; i < s + m; ++i) {
      const float y = yAt(a, i, e0);
      float u = 0.5f;
      if (p.stochastic) {
        const uint64_t gi = a.chunkOffset + i;
        u = uniformFrom16(halfWord(philoxGroup(key, gi >> 3), static_cast<unsigned>(gi & 7)));
      }
      const uint32_t c = quantizeElement(y, qb, maxc, u);
      const size_t bit = i * p.bits;
      r.body[bit / 8] = static_cast<uint8_t>(r.body[bit / 8] | (c << (bit % 8)));
      if (e0) r.residual[i] = fsubRn(y, dequantizeElement(c, qb.lo, qb.delta));
    }
  }
  return r;
}

RefOut referenceCast(const CodecParams& p, const EncodeArgs& a, const float* e0) {
  RefOut r;
  const size_t n = a.count;
  r.body.assign(n * (p.kind == CodecKind::None ? 4 : 2), 0);
  if (e0) r.residual.assign(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    const float y = yAt(a, i, e0);
    float d = y;
    if (p.kind == CodecKind::None) {
      std::memcpy(&r.body[4 * i], &y, 4);
    } else {
      const uint16_t h = p.kind == CodecKind::Bf16 ? floatToBf16(y) : floatToFp16(y);
      std::memcpy(&r.body[2 * i], &h, 2);
      d = p.kind == CodecKind::Bf16 ? bf16ToFloat(h) : fp16ToFloat(h);
    }
    if (e0) r.residual[i] = p.kind == CodecKind::None ? 0.0f : fsubRn(y, d);
  }
  return r;
}

// Values that exercise every edge of the range, NaN and zero handling.
uint32_t bitsOf(float f) { return floatBits(f); }

std::vector<float> edgeValues() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, -NAN,
                          bitsFloat(0x7fc12345u), bitsFloat(0xffa00001u), bitsFloat(0x7f800001u),
                          bitsFloat(0x7e800000u), bitsFloat(0xfe800000u), bitsFloat(0x7e800001u),
                          bitsFloat(0xfe800001u), bitsFloat(0x7f7fffffu), 1e-45f, -1e-45f, 1e-38f, 65504.0f,
                          65519.99f, 65520.0f, -65520.0f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 3e-39f};
  return v;
}

std::vector<float> mixedInput(size_t n, uint32_t seed, int flavor) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, flavor == 2 ? 1e3f : 1e-3f);
  std::uniform_int_distribution<uint32_t> any;
  const std::vector<float> edge = edgeValues();
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = d(rng);
    if (flavor == 1 && any(rng) % 17 == 0) x[i] = edge[any(rng) % edge.size()];
    if (flavor == 3) x[i] = bitsFloat(any(rng));  // any bit pattern
    if (flavor == 4) x[i] = (i / 300) % 2 ? 2.5f : -0.0f;  // constant blocks
    if (flavor == 5) x[i] = static_cast<float>(static_cast<int>(any(rng) % 9) - 4);  // ties, zeros
  }
  return x;
}

bool isNan16(CodecKind k, uint16_t h) {
  return k == CodecKind::Bf16 ? (h & 0x7fffu) > 0x7f80u : (h & 0x7fffu) > 0x7c00u;
}

// Byte-exact, except that two NaNs of the cast codecs compare equal: which
// NaN an fp32 add of two NaN operands returns depends on the operand order,
// which the compiler may commute (and the GPU returns one canonical NaN), so
// NaN payloads were never part of the CPU/GPU contract. Everything else is.
void expectSame(const char* what, CodecKind k, const std::vector<uint8_t>& got, const uint8_t* ref, size_t len,
                const std::string& ctx) {
  ASSERT_EQ(got.size() >= len, true) << ctx;
  if (k == CodecKind::Bf16 || k == CodecKind::Fp16 || k == CodecKind::None) {
    const size_t w = k == CodecKind::None ? 4 : 2;
    for (size_t i = 0; i < len; i += w) {
      if (std::memcmp(&got[i], ref + i, w) == 0) continue;
      bool bothNan;
      if (w == 4) {
        float a, b;
        std::memcpy(&a, &got[i], 4);
        std::memcpy(&b, ref + i, 4);
        bothNan = std::isnan(a) && std::isnan(b);
      } else {
        uint16_t a, b;
        std::memcpy(&a, &got[i], 2);
        std::memcpy(&b, ref + i, 2);
        bothNan = isNan16(k, a) && isNan16(k, b);
      }
      ASSERT_TRUE(bothNan) << what << " element " << i / w << " " << ctx;
    }
    return;
  }
  for (size_t i = 0; i < len; ++i) ASSERT_EQ(got[i], ref[i]) << what << " byte " << i << " " << ctx;
}

bool sameResidual(float a, float b) { return bitsOf(a) == bitsOf(b) || (std::isnan(a) && std::isnan(b)); }

void checkOne(const std::string& spec, sqzDataType_t dtype, const std::vector<float>& x, bool ef, uint64_t offset,
              uint64_t seed) {
  const CodecParams p = parseCodecSpec(spec);
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = dtype == sqzFloat16 ? floatToFp16(x[i]) : floatToBf16(x[i]);
  std::vector<float> e0 = mixedInput(x.size(), static_cast<uint32_t>(seed + 17), static_cast<int>(seed % 3));
  std::vector<float> e = e0;
  EncodeArgs a;
  a.input = dtype == sqzFloat32 ? static_cast<const void*>(x.data()) : static_cast<const void*>(h.data());
  a.dtype = dtype;
  a.count = x.size();
  a.residual = ef ? e.data() : nullptr;
  a.seed = seed;
  a.step = seed * 3 + 1;
  a.rank = static_cast<uint32_t>(seed % 5);
  a.chunkOffset = offset;
  const std::string ctx = spec + " dtype=" + std::to_string(dtype) + " n=" + std::to_string(x.size()) +
                          " ef=" + std::to_string(ef) + " off=" + std::to_string(offset) + " seed=" +
                          std::to_string(seed);
  std::vector<uint8_t> payload(encodedBytes(p, a.count));
  const EncodeResult res = encodeCpu(p, a, payload.data(), payload.size());
  const PayloadLayout l = payloadLayout(p, a.count, false);
  RefOut ref = p.kind == CodecKind::Quant ? referenceQuant(p, a, ef ? e0.data() : nullptr)
                                          : referenceCast(p, a, ef ? e0.data() : nullptr);
  if (p.kind == CodecKind::Quant) {
    EXPECT_EQ(res.nonQuantizable, ref.bad) << ctx;
    std::vector<uint8_t> params(payload.begin() + static_cast<long>(l.params), payload.end());
    expectSame("params", p.kind, params, ref.params.data(), ref.params.size(), ctx);
  }
  std::vector<uint8_t> body(payload.begin() + static_cast<long>(l.body), payload.end());
  expectSame("body", p.kind, body, ref.body.data(), ref.body.size(), ctx);
  if (ef) {
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(sameResidual(e[i], ref.residual[i])) << "residual " << i << " " << ctx;
  }
}

TEST(CpuReference, QuantizersMatchThePerElementMath) {
  const std::vector<std::string> specs = {"q8",    "q4",    "q2",           "q1",           "q8:rn",
                                          "q4:rn", "q2:rn", "q1:rn",        "q4:block=8",   "q8:block=64",
                                          "q4:block=1024:rn", "q2:block=24", "q8:block=2048"};
  const std::vector<size_t> sizes = {1, 7, 8, 9, 255, 256, 257, 1000, 4096, 5003};
  uint64_t seed = 1;
  for (const auto& spec : specs) {
    for (size_t n : sizes) {
      for (int flavor = 0; flavor < 6; ++flavor) {
        const std::vector<float> x = mixedInput(n, static_cast<uint32_t>(n * 7 + flavor), flavor);
        for (bool ef : {false, true}) {
          const uint64_t off = (seed * 5) % 23 + (seed % 4 == 0 ? (uint64_t{1} << 33) : 0);
          checkOne(spec, sqzFloat32, x, ef, off, seed);
          if (flavor % 2 == 0) checkOne(spec, seed % 2 ? sqzFloat16 : sqzBfloat16, x, ef, off, seed);
          ++seed;
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(CpuReference, EveryChunkOffsetResidue) {
  const std::vector<float> x = mixedInput(3 * 256 + 40, 99, 1);
  for (uint64_t off = 0; off < 32; ++off) {
    for (const char* spec : {"q8", "q4", "q1", "q2:block=16"}) {
      checkOne(spec, sqzFloat32, x, true, off, off + 1000);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(CpuReference, CastsMatchThePerElementMath) {
  for (const char* spec : {"none", "bf16", "fp16"}) {
    for (size_t n : {1u, 7u, 8u, 33u, 1000u, 4099u, 20000u}) {
      for (int flavor = 0; flavor < 6; ++flavor) {
        const std::vector<float> x = mixedInput(n, static_cast<uint32_t>(n + flavor), flavor);
        for (bool ef : {false, true}) {
          for (sqzDataType_t t : {sqzFloat32, sqzFloat16, sqzBfloat16}) checkOne(spec, t, x, ef, 3, n + flavor);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Top-K indices: exactly the K largest magnitude keys, ties by lower index
// (NaN above Inf), whatever the selection algorithm.
TEST(CpuReference, TopKIndicesMatchAStableSort) {
  for (const char* spec : {"topk:0.001", "topk:0.01", "topk:0.2", "topk:0.7:int8"}) {
    const CodecParams p = parseCodecSpec(spec);
    for (size_t n : {1u, 2u, 100u, 4097u, 30011u}) {
      for (int flavor = 0; flavor < 6; ++flavor) {
        const std::vector<float> x = mixedInput(n, static_cast<uint32_t>(n * 3 + flavor), flavor);
        EncodeArgs a;
        a.input = x.data();
        a.count = n;
        std::vector<uint8_t> payload(encodedBytes(p, n));
        encodeCpu(p, a, payload.data(), payload.size());
        const PayloadLayout l = payloadLayout(p, n, false);
        std::vector<uint32_t> got(l.selected), order(n);
        std::memcpy(got.data(), payload.data() + l.params, got.size() * 4);
        for (uint32_t i = 0; i < n; ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(),
                         [&](uint32_t u, uint32_t v) { return magnitudeKey(x[u]) > magnitudeKey(x[v]); });
        order.resize(l.selected);
        std::sort(order.begin(), order.end());
        ASSERT_EQ(got, order) << spec << " n=" << n << " flavor=" << flavor;
      }
    }
  }
}

TEST(CpuReference, CastDecodeMatchesThePerElementMath) {
  for (const char* spec : {"bf16", "fp16"}) {
    const CodecParams p = parseCodecSpec(spec);
    const size_t n = 65536 + 13;
    std::vector<float> x(n);
    EncodeArgs a;
    a.input = x.data();
    a.count = n;
    std::vector<uint8_t> payload(encodedBytes(p, n));
    encodeCpu(p, a, payload.data(), payload.size());
    const PayloadLayout l = payloadLayout(p, n, false);
    // Every 16-bit pattern, NaNs and subnormals included.
    for (size_t i = 0; i < n; ++i) {
      const uint16_t b = static_cast<uint16_t>(i * 40503u);
      std::memcpy(&payload[l.body + 2 * i], &b, 2);
    }
    std::vector<float> out(n), acc(n);
    for (size_t i = 0; i < n; ++i) acc[i] = static_cast<float>(i % 7) - 3.0f;
    std::vector<float> acc0 = acc;
    DecodeExpect ex = test::expectFor(p, a);
    decodeCpu(ex, payload.data(), payload.size(), out.data(), DecodeMode::Overwrite);
    decodeCpu(ex, payload.data(), payload.size(), acc.data(), DecodeMode::Accumulate);
    for (size_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, &payload[l.body + 2 * i], 2);
      const float d = p.kind == CodecKind::Bf16 ? bf16ToFloat(b) : fp16ToFloat(b);
      ASSERT_EQ(bitsOf(out[i]), bitsOf(d)) << spec << " " << b;
      ASSERT_EQ(bitsOf(acc[i]), bitsOf(faddRn(acc0[i], d))) << spec << " " << b;
    }
  }
}

}  // namespace
}  // namespace sqz
