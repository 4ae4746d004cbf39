// CPU codecs. Hot loops are simple counted loops over one block held in
// small scratch arrays so that g++ vectorizes them (checked with
// -fopt-info-vec); this file is compiled with -ffp-contract=off so the
// rounding matches the device's __fadd_rn/__fmul_rn exactly.
#include "kernels/cpu_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "kernels/codec_math.h"
#include "kernels/cpu_half_simd.h"
#include "kernels/cpu_quant_simd.h"
#include "kernels/cpu_sign_rotation.h"
#include "kernels/cpu_topk_scan.h"
#include "kernels/payload_checks.h"
#include "kernels/sign_rotation_math.h"

namespace sqz {
namespace {

// memcpy that accepts null pointers for zero bytes (empty chunks have no
// storage behind them, and memcpy(nullptr, ..., 0) is undefined).
inline void copyBytes(void* dst, const void* src, size_t n) {
  if (n > 0) std::memcpy(dst, src, n);
}

// An empty chunk's buffer may be null (an empty std::vector's data()), and
// memset's pointer must not be, even for no bytes.
inline void zeroFloats(float* dst, size_t n) {
  if (n > 0) std::memset(dst, 0, n * sizeof(float));
}


constexpr size_t kTile = 4096;  // elements per scratch tile for the streaming codecs

template <class T>
inline const T* typed(const void* p) {
  return static_cast<const T*>(p);
}

// y[i] = g[i] + e[i] (or g[i] without error feedback), in fp32.
template <class T>
void loadY(const T* __restrict g, const float* __restrict e, size_t n, float* __restrict y) {
  if (e) {
    for (size_t i = 0; i < n; ++i) y[i] = faddRn(toFloat(g[i]), e[i]);
  } else {
    for (size_t i = 0; i < n; ++i) y[i] = toFloat(g[i]);
  }
}

// fp16 input: the whole run converted at once (F16C where present).
void loadY(const Fp16Bits* __restrict g, const float* __restrict e, size_t n, float* __restrict y) {
  cpusimd::fp16ToFloatN(reinterpret_cast<const uint16_t*>(g), y, n);
  if (e) {
    for (size_t i = 0; i < n; ++i) y[i] = faddRn(y[i], e[i]);
  }
}

// Uniforms for global elements gi0 .. gi0 + n - 1: one Philox call per
// aligned group of eight (the same grouping as the device). Compiled for
// AVX2 too, where the 32x32->64 multiplies run four wide.
__attribute__((target_clones("avx2", "default")))
void fillRandom(const RngKey& key, uint64_t gi0, size_t n, uint16_t* __restrict tmp, float* __restrict u) {
  const uint64_t g0 = gi0 >> 3;
  const uint64_t groups = ((gi0 + n + 7) >> 3) - g0;
  for (uint64_t g = 0; g < groups; ++g) {
    const Philox4 r = philoxGroup(key, g0 + g);
    for (unsigned h = 0; h < 8; ++h) tmp[8 * g + h] = halfWord(r, h);
  }
  const uint16_t* src = tmp + (gi0 & 7);
  for (size_t i = 0; i < n; ++i) u[i] = uniformFrom16(src[i]);
}

void checkEncode(const CodecParams& p, const EncodeArgs& a, size_t capacity, const PayloadLayout& l) {
  if (const char* why = checkCodecParams(p)) fail(sqzInvalidUsage, "codec parameters: %s", why);
  SQZ_REQUIRE(a.dtype == sqzFloat32 || a.dtype == sqzFloat16 || a.dtype == sqzBfloat16, sqzInvalidUsage,
              "codecs take float32, float16 or bfloat16 input, not %d", static_cast<int>(a.dtype));
  SQZ_REQUIRE(a.count <= kMaxChunkElements, sqzInvalidUsage, "chunk of %zu elements exceeds 2^32-1", a.count);
  SQZ_REQUIRE(a.input != nullptr || a.count == 0, sqzInvalidUsage, "null input");
  SQZ_REQUIRE(capacity >= l.total, sqzInvalidUsage, "payload buffer holds %zu bytes, %zu needed", capacity, l.total);
}

// ---- casts ------------------------------------------------------------------

template <class T, CodecKind K>
void encodeCast(const EncodeArgs& a, uint8_t* body) {
  const T* g = typed<T>(a.input);
  std::vector<float> y(kTile), d(K == CodecKind::Fp16 ? kTile : 0);
  for (size_t s = 0; s < a.count; s += kTile) {
    size_t n = std::min(kTile, a.count - s);
    float* e = a.residual ? a.residual + s : nullptr;
    loadY(g + s, e, n, y.data());
    if (K == CodecKind::None) {
      copyBytes(body + s * 4, y.data(), n * 4);
      if (e) std::memset(e, 0, n * sizeof(float));
    } else if (K == CodecKind::Fp16) {
      uint16_t* out = reinterpret_cast<uint16_t*>(body) + s;
      cpusimd::floatToFp16N(y.data(), out, n);
      if (e) {
        cpusimd::fp16ToFloatN(out, d.data(), n);
        for (size_t i = 0; i < n; ++i) e[i] = fsubRn(y[i], d[i]);
      }
    } else {
      uint16_t* out = reinterpret_cast<uint16_t*>(body) + s;
      for (size_t i = 0; i < n; ++i) out[i] = K == CodecKind::Bf16 ? floatToBf16(y[i]) : floatToFp16(y[i]);
      if (e) {
        for (size_t i = 0; i < n; ++i)
          e[i] = fsubRn(y[i], K == CodecKind::Bf16 ? bf16ToFloat(out[i]) : fp16ToFloat(out[i]));
      }
    }
  }
}

// ---- blockwise quantization ---------------------------------------------------

// min and max over the quantizable values of y (lo > hi when none); returns
// how many were not quantizable. Eight independent lanes instead of one
// running min: float min/max reductions only vectorize under fast-math,
// which would also drop the NaN test.
size_t quantizableRange(const float* __restrict y, size_t n, float* loOut, float* hiOut) {
  float lo[8], hi[8];
  uint32_t bad[8];
  for (int k = 0; k < 8; ++k) lo[k] = INFINITY, hi[k] = -INFINITY, bad[k] = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const float v = y[i + k];
      const bool ok = std::fabs(v) <= 0x1p126f;
      const float vl = ok ? v : INFINITY, vh = ok ? v : -INFINITY;
      lo[k] = vl < lo[k] ? vl : lo[k];
      hi[k] = vh > hi[k] ? vh : hi[k];
      bad[k] += ok ? 0u : 1u;
    }
  }
  for (; i < n; ++i) {
    const float v = y[i];
    const bool ok = std::fabs(v) <= 0x1p126f;
    if (ok) lo[0] = v < lo[0] ? v : lo[0], hi[0] = v > hi[0] ? v : hi[0];
    bad[0] += ok ? 0u : 1u;
  }
  size_t total = 0;
  for (int k = 1; k < 8; ++k) {
    lo[0] = lo[k] < lo[0] ? lo[k] : lo[0];
    hi[0] = hi[k] > hi[0] ? hi[k] : hi[0];
  }
  for (int k = 0; k < 8; ++k) total += bad[k];
  *loOut = lo[0];
  *hiOut = hi[0];
  return total;
}

template <unsigned Bits>
void packCodes(const uint8_t* __restrict c, size_t bytes, uint8_t* __restrict out) {
  constexpr unsigned per = 8 / Bits;
  for (size_t j = 0; j < bytes; ++j) {
    unsigned b = 0;
    for (unsigned k = 0; k < per; ++k) b |= static_cast<unsigned>(c[j * per + k]) << (k * Bits);
    out[j] = static_cast<uint8_t>(b);
  }
}

template <unsigned Bits>
void unpackCodes(const uint8_t* __restrict in, size_t bytes, uint8_t* __restrict c) {
  constexpr unsigned per = 8 / Bits;
  constexpr unsigned mask = (1u << Bits) - 1u;
  for (size_t j = 0; j < bytes; ++j) {
    unsigned b = in[j];
    for (unsigned k = 0; k < per; ++k) c[j * per + k] = static_cast<uint8_t>((b >> (k * Bits)) & mask);
  }
}

template <class T, unsigned Bits>
size_t encodeQuant(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload) {
  const size_t B = p.blockSize;
  const T* g = typed<T>(a.input);
  float* params = reinterpret_cast<float*>(payload + l.params);
  uint8_t* codesOut = payload + l.body;
  std::vector<float> y(B), u(B, 0.5f);
  std::vector<uint16_t> rnd(B + 16);
  std::vector<uint8_t> codes(B + 8, 0);
  const RngKey key = makeRngKey(a.seed, a.step, a.rank);
  const float maxc = static_cast<float>(maxCode(Bits));
  size_t bad = 0;
  size_t blk = 0;
#if SQZ_CPU_SIMD
  // fp32 input, full blocks: the fused vector path (same bytes and bits).
  if (std::is_same<T, float>::value && cpusimd::activeIsa() != cpusimd::Isa::Base) {
    const size_t full = a.count / B;
    std::vector<uint16_t> words(B + 256);
    const float* gf = reinterpret_cast<const float*>(g);
    using Fn = size_t (*)(const float*, float*, size_t, size_t, const RngKey&, uint64_t, float*, uint8_t*, float*,
                          uint16_t*);
    const bool wide = cpusimd::activeIsa() == cpusimd::Isa::Avx512;
    const bool ef = a.residual != nullptr;
    Fn fn;
    if (wide) {
      fn = ef ? (p.stochastic ? cpusimd::encodeFullBlocks512<Bits, true, true> : cpusimd::encodeFullBlocks512<Bits, true, false>)
              : (p.stochastic ? cpusimd::encodeFullBlocks512<Bits, false, true> : cpusimd::encodeFullBlocks512<Bits, false, false>);
    } else {
      fn = ef ? (p.stochastic ? cpusimd::encodeFullBlocksAvx2<Bits, true, true> : cpusimd::encodeFullBlocksAvx2<Bits, true, false>)
              : (p.stochastic ? cpusimd::encodeFullBlocksAvx2<Bits, false, true> : cpusimd::encodeFullBlocksAvx2<Bits, false, false>);
    }
    bad += fn(gf, a.residual, full, B, key, a.chunkOffset, params, codesOut, y.data(), words.data());
    blk = full;
  }
#endif
  for (; blk < l.blocks; ++blk) {
    const size_t s = blk * B;
    const size_t n = std::min(B, a.count - s);
    float* e = a.residual ? a.residual + s : nullptr;
    loadY(g + s, e, n, y.data());
    float lo, hi;
    bad += quantizableRange(y.data(), n, &lo, &hi);
    const QuantBlock qb = makeQuantBlock(lo, hi, Bits);
    params[2 * blk] = qb.lo;
    params[2 * blk + 1] = qb.delta;
    if (p.stochastic) fillRandom(key, a.chunkOffset + s, n, rnd.data(), u.data());
    for (size_t i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>(quantizeElement(y[i], qb, maxc, u[i]));
    for (size_t i = n; i < B + 8 && i < n + 8; ++i) codes[i] = 0;
    if (e) {
      for (size_t i = 0; i < n; ++i) e[i] = fsubRn(y[i], dequantizeElement(codes[i], qb.lo, qb.delta));
    }
    packCodes<Bits>(codes.data(), (n * Bits + 7) / 8, codesOut + s * Bits / 8);
  }
  return bad;
}

template <unsigned Bits>
void decodeQuant(const DecodeExpect& x, const PayloadLayout& l, const uint8_t* payload, float* out, DecodeMode mode) {
  const size_t B = x.params.blockSize;
  const float* params = reinterpret_cast<const float*>(payload + l.params);
  // Every block's parameters first: a bad one rejects the payload unwritten.
  for (size_t blk = 0; blk < l.blocks; ++blk) {
    float lo, delta;
    std::memcpy(&lo, params + 2 * blk, 4);
    std::memcpy(&delta, params + 2 * blk + 1, 4);
    SQZ_REQUIRE(blockParamsOk(lo, delta), sqzInvalidUsage, "payload block %zu has a non-finite or negative scale",
                blk);
  }
  std::vector<uint8_t> codes(B + 8);
  for (size_t blk = 0; blk < l.blocks; ++blk) {
    const size_t s = blk * B;
    const size_t n = std::min(B, static_cast<size_t>(x.count) - s);
    float lo, delta;
    std::memcpy(&lo, params + 2 * blk, 4);
    std::memcpy(&delta, params + 2 * blk + 1, 4);
    unpackCodes<Bits>(payload + l.body + s * Bits / 8, (n * Bits + 7) / 8, codes.data());
    float* o = out + s;
    if (mode == DecodeMode::Accumulate) {
      for (size_t i = 0; i < n; ++i) o[i] = faddRn(o[i], dequantizeElement(codes[i], lo, delta));
    } else {
      for (size_t i = 0; i < n; ++i) o[i] = dequantizeElement(codes[i], lo, delta);
    }
  }
}

// ---- scaled sign ------------------------------------------------------------------

// Sums of |y| and y^2 over one block in codec_math.h's fixed order (lane l
// takes elements l, l+32, ...; then the butterfly). The inner loops run
// over the 32 lanes, so they vectorize; returns how many values were not
// quantizable.
size_t signBlockSums(const float* __restrict y, size_t n, double* sumAbs, double* sumSq) {
  double a[kSignLanes] = {}, q[kSignLanes] = {};
  size_t bad = 0;
  size_t j = 0;
  for (; j + kSignLanes <= n; j += kSignLanes) {
    for (uint32_t l = 0; l < kSignLanes; ++l) a[l] = daddRn(a[l], signMagnitude(y[j + l]));
    for (uint32_t l = 0; l < kSignLanes; ++l) q[l] = daddRn(q[l], signSquare(y[j + l]));
  }
  for (uint32_t l = 0; j + l < n; ++l) {
    a[l] = daddRn(a[l], signMagnitude(y[j + l]));
    q[l] = daddRn(q[l], signSquare(y[j + l]));
  }
  for (size_t i = 0; i < n; ++i) bad += quantizable(y[i]) ? 0 : 1;
  *sumAbs = signLaneSum(a);
  *sumSq = signLaneSum(q);
  return bad;
}

// sign:rot: the block is rotated before its sums and bits, the decoded block
// is rotated back before it is written, and the residual is taken against
// the rotated-back block, i.e. in the gradient's own domain. A value that is
// not quantizable spreads over its whole rotated block, which then sends
// nothing (scale 0) and stays in the residual whole.
template <class T>
size_t encodeSign(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload) {
  const size_t B = p.blockSize;
  const T* g = typed<T>(a.input);
  float* scales = reinterpret_cast<float*>(payload + l.params);
  uint8_t* bits = payload + l.body;
  const uint64_t key = p.rotate ? signRotationKey(a.seed, a.step, a.rank) : 0;
  if (p.rotate) std::memcpy(payload + l.rotationKey, &key, 8);
  std::vector<float> y(B), z(p.rotate ? B : 0);
  size_t bad = 0;
  for (size_t blk = 0; blk < l.blocks; ++blk) {
    const size_t s = blk * B, n = std::min(B, a.count - s);
    float* e = a.residual ? a.residual + s : nullptr;
    loadY(g + s, e, n, y.data());
    const uint64_t blockKey = p.rotate ? signRotationBlockKey(key, a.chunkOffset + s) : 0;
    const float* q = y.data();
    if (p.rotate) {
      std::copy(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n), z.begin());
      rotateSignBlock(z.data(), n, blockKey);
      q = z.data();
    }
    double sumAbs, sumSq;
    bad += signBlockSums(q, n, &sumAbs, &sumSq);
    const float scale = signBlockScale(sumAbs, sumSq, static_cast<uint32_t>(n));
    scales[blk] = scale;
    uint8_t* out = bits + s / 8;  // B is a multiple of 32: every block starts on a byte
    for (size_t k = 0; k < (n + 7) / 8; ++k) {
      unsigned b = 0;
      for (unsigned i = 0; i < 8 && 8 * k + i < n; ++i) b |= signBit(q[8 * k + i]) << i;
      out[k] = static_cast<uint8_t>(b);
    }
    if (!e) continue;
    if (p.rotate) {
      for (size_t i = 0; i < n; ++i) z[i] = signValue(signBit(z[i]), scale);
      unrotateSignBlock(z.data(), n, blockKey);
      for (size_t i = 0; i < n; ++i) e[i] = fsubRn(y[i], z[i]);
    } else {
      for (size_t i = 0; i < n; ++i) e[i] = fsubRn(y[i], signValue(signBit(y[i]), scale));
    }
  }
  return bad;
}

void decodeSign(const DecodeExpect& x, const PayloadLayout& l, const uint8_t* payload, float* out, DecodeMode mode) {
  const size_t B = x.params.blockSize;
  const float* scales = reinterpret_cast<const float*>(payload + l.params);
  // Every block's scale first: a bad one rejects the payload unwritten.
  for (size_t blk = 0; blk < l.blocks; ++blk) {
    float scale;
    std::memcpy(&scale, scales + blk, 4);
    SQZ_REQUIRE(signScaleOk(scale), sqzInvalidUsage,
                "payload block %zu has a non-finite or negative sign scale", blk);
  }
  const bool rotated = x.params.rotate;
  uint64_t key = 0;
  if (rotated) std::memcpy(&key, payload + l.rotationKey, 8);  // every key is valid
  std::vector<float> d(rotated ? B : 0);
  const uint8_t* bits = payload + l.body;
  for (size_t blk = 0; blk < l.blocks; ++blk) {
    const size_t s = blk * B, n = std::min(B, static_cast<size_t>(x.count) - s);
    float scale;
    std::memcpy(&scale, scales + blk, 4);
    float* o = out + s;
    const uint8_t* in = bits + s / 8;
    if (rotated) {
      for (size_t i = 0; i < n; ++i) d[i] = signValue((in[i >> 3] >> (i & 7)) & 1u, scale);
      unrotateSignBlock(d.data(), n, signRotationBlockKey(key, x.chunkOffset + s));
      if (mode == DecodeMode::Accumulate) {
        for (size_t i = 0; i < n; ++i) o[i] = faddRn(o[i], d[i]);
      } else {
        std::copy(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n), o);
      }
    } else if (mode == DecodeMode::Accumulate) {
      for (size_t i = 0; i < n; ++i) o[i] = faddRn(o[i], signValue((in[i >> 3] >> (i & 7)) & 1u, scale));
    } else {
      for (size_t i = 0; i < n; ++i) o[i] = signValue((in[i >> 3] >> (i & 7)) & 1u, scale);
    }
  }
}

// ---- top-K ---------------------------------------------------------------------

// The selected positions (increasing) and their y values.
struct TopKPick {
  std::vector<uint32_t> idx;
  std::vector<float> val;
};

// Appends to `pick`, in index order, the K largest keys among the m
// candidates (positions into y in index order, with their values; they
// must hold every key at or above the K-th largest): keys above the K-th
// largest key t, then the first (K - above) keys equal to t. Ties
// therefore go to lower indices. `order`: scratch.
void keepLargest(const uint32_t* cand, const float* candVal, size_t m, size_t k, TopKPick& pick,
                 std::vector<uint32_t>& order) {
  order.resize(m);
  for (size_t j = 0; j < m; ++j) order[j] = magnitudeKey(candVal[j]);
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k - 1), order.end(),
                   std::greater<uint32_t>());
  const uint32_t t = order[k - 1];
  size_t above = 0;
  for (size_t j = 0; j < m; ++j) above += magnitudeKey(candVal[j]) > t ? 1 : 0;
  size_t ties = k - above;
  for (size_t j = 0; j < m; ++j) {
    const uint32_t key = magnitudeKey(candVal[j]);
    if (key > t || (key == t && ties > 0)) {
      if (key == t) --ties;
      pick.idx.push_back(cand[j]);
      pick.val.push_back(candVal[j]);
    }
  }
}

// A threshold from an evenly strided sample of the keys, set a little below
// the sample's estimate of the K-th largest, then one pass that keeps the
// positions (and values) at or above it. Exact whenever it keeps at least K
// and at most `cap` positions (keepLargest picks the K); returns false
// otherwise (an unlucky sample, or many equal keys), and the caller
// selects exactly. With g (error feedback), y = g + e is formed by the same
// pass and left in e (= `y`); *added then says how far it got (all of y
// when it succeeds).
bool selectBySample(const float* g, float* e, const float* y, size_t n, size_t k, TopKPick& pick, size_t* added) {
  *added = 0;
  constexpr size_t kSamples = 1 << 15;
  if (n < 16 * kSamples || k > n / 16) return false;
  std::vector<uint32_t> sample(kSamples);
  const size_t stride = n / kSamples;
  for (size_t j = 0; j < kSamples; ++j)
    sample[j] = magnitudeKey(g ? faddRn(g[j * stride], e[j * stride]) : y[j * stride]);
  // Aim for about K + K/8 + 4 sqrt(K) positions: a sample this large misses
  // K only when the data's order correlates with the stride.
  const double aim = static_cast<double>(k) * 1.125 + 4.0 * std::sqrt(static_cast<double>(k));
  const size_t rank = std::min(kSamples - 1, static_cast<size_t>(aim * kSamples / static_cast<double>(n)));
  std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(rank), sample.end(),
                   std::greater<uint32_t>());
  const int32_t threshold = static_cast<int32_t>(sample[rank]);  // keys are 31 bits
  const size_t cap = 2 * k + 4096;
  // Per call, uninitialized (no zero-fill pass): the library holds no
  // memory between calls that grows with the largest buffer ever seen (the
  // soak's flatness check saw a thread-local cache as a 9.6 MiB step). The
  // allocator keeps a freed block of this size in its heap (glibc raises
  // its mmap threshold after the first free), so repeated calls do not
  // fault fresh pages, and malloc_trim can hand it back.
  std::unique_ptr<uint32_t[]> candHolder(new uint32_t[cap]);
  std::unique_ptr<float[]> candValHolder(new float[cap]);
  uint32_t* cand = candHolder.get();
  float* candVal = candValHolder.get();
  size_t found = 0, done;
  if (g) {
    done = cpusimd::scanAtLeast<true>(g, e, e, n, threshold, cand, candVal, cap, &found);
    *added = done;
  } else {
    done = cpusimd::scanAtLeast<false>(nullptr, y, nullptr, n, threshold, cand, candVal, cap, &found);
  }
  if (done < n || found < k) return false;
  std::vector<uint32_t> order;
  keepLargest(cand, candVal, found, k, pick, order);
  return true;
}

// Radix select: a histogram of the top 11 bits of the magnitude key finds
// the bin holding the K-th largest, and one pass collects the positions in
// that bin or above it; keepLargest picks the K. 0 < k < n.
void selectByHistogram(const float* y, size_t n, size_t k, TopKPick& pick) {
  constexpr unsigned kShift = 20;                    // keys are 31 bits
  constexpr size_t kBins = size_t{1} << (31 - kShift);
  // Four interleaved histograms: equal neighbouring keys (the common case)
  // would otherwise serialize on one counter.
  std::vector<uint32_t> hist(4 * kBins, 0);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t j = 0; j < 4; ++j) ++hist[j * kBins + (magnitudeKey(y[i + j]) >> kShift)];
  }
  for (; i < n; ++i) ++hist[magnitudeKey(y[i]) >> kShift];
  size_t above = 0, b = kBins;
  while (b > 0) {
    --b;
    const size_t c = size_t{hist[b]} + hist[kBins + b] + hist[2 * kBins + b] + hist[3 * kBins + b];
    if (above + c >= k) break;
    above += c;
  }
  std::vector<uint32_t> cand;
  std::vector<float> candVal;
  for (i = 0; i < n; ++i) {
    if ((magnitudeKey(y[i]) >> kShift) < b) continue;
    cand.push_back(static_cast<uint32_t>(i));
    candVal.push_back(y[i]);
  }
  std::vector<uint32_t> order;
  keepLargest(cand.data(), candVal.data(), cand.size(), k, pick, order);
}

// The K largest magnitudes of y, ties by lower index, as increasing indices
// with their values. Large buffers: selectBySample (one pass). Otherwise, or
// when the sample misses, selectByHistogram. Same set as sorting all keys
// either way. With g (error feedback): y = g + e is formed first, in e
// (y == e), by the sampled scan's own pass where it can.
void selectTopK(const float* g, float* e, const float* y, size_t n, size_t k, TopKPick& pick) {
  pick.idx.clear();
  pick.val.clear();
  pick.idx.reserve(k);
  pick.val.reserve(k);
  size_t added = 0;
  const bool sampled = k > 0 && k < n && selectBySample(g, e, y, n, k, pick, &added);
  if (g)
    for (size_t i = added; i < n; ++i) e[i] = faddRn(g[i], e[i]);
  if (sampled || k == 0) return;
  if (k >= n) {
    for (size_t i = 0; i < n; ++i) {
      pick.idx.push_back(static_cast<uint32_t>(i));
      pick.val.push_back(y[i]);
    }
    return;
  }
  selectByHistogram(y, n, k, pick);
}

// Writes the K values of `sel` (already y-values) in format f; returns the
// decoded values in `dec` and the number of non-quantizable values.
size_t writeValues(ValueFormat f, const float* v, size_t k, const PayloadLayout& l, uint8_t* payload, float* dec) {
  size_t bad = 0;
  if (f == ValueFormat::Fp32) {
    copyBytes(payload + l.body, v, k * 4);
    copyBytes(dec, v, k * 4);
  } else if (f == ValueFormat::Bf16) {
    uint16_t* out = reinterpret_cast<uint16_t*>(payload + l.body);
    for (size_t j = 0; j < k; ++j) {
      out[j] = floatToBf16(v[j]);
      dec[j] = bf16ToFloat(out[j]);
    }
  } else {
    // The scale comes from quantizable values only: one NaN must not turn
    // every value of the payload into NaN.
    float maxAbs = 0.0f;
    for (size_t j = 0; j < k; ++j) {
      bool ok = quantizable(v[j]);
      float a = std::fabs(v[j]);
      maxAbs = (ok && a > maxAbs) ? a : maxAbs;
      bad += ok ? 0 : 1;
    }
    const float scale = int8Scale(maxAbs);
    const float inv = scale > 0.0f ? fdivRn(1.0f, scale) : 0.0f;
    std::memcpy(payload + l.scale, &scale, 4);
    int8_t* out = reinterpret_cast<int8_t*>(payload + l.body);
    for (size_t j = 0; j < k; ++j) {
      out[j] = int8Encode(v[j], inv);
      dec[j] = int8Decode(out[j], scale);
    }
  }
  return bad;
}

// e[i] = g[i] + e[i], in place.
template <class T>
void addInPlace(const T* __restrict g, float* __restrict e, size_t n) {
  for (size_t i = 0; i < n; ++i) e[i] = faddRn(toFloat(g[i]), e[i]);
}
void addInPlace(const Fp16Bits* __restrict g, float* __restrict e, size_t n) {
  std::vector<float> t(std::min(n, kTile));
  for (size_t s = 0; s < n; s += kTile) {
    const size_t m = std::min(kTile, n - s);
    cpusimd::fp16ToFloatN(reinterpret_cast<const uint16_t*>(g + s), t.data(), m);
    float* o = e + s;
    for (size_t i = 0; i < m; ++i) o[i] = faddRn(t[i], o[i]);
  }
}

// The K increasing indices in the payload's layout (wire_format.h).
void writeIndices(const uint32_t* idx, size_t k, const PayloadLayout& l, uint8_t* payload) {
  if (l.indexBlocks == 0) {
    copyBytes(payload + l.params, idx, k * 4);
    return;
  }
  uint8_t* ends = payload + l.params;
  uint8_t* offsets = ends + 4 * l.indexBlocks;
  size_t j = 0;
  for (size_t b = 0; b < l.indexBlocks; ++b) {
    const uint64_t limit = (b + 1) * kIndexBlock;
    for (; j < k && idx[j] < limit; ++j) {
      const uint16_t offset = static_cast<uint16_t>(idx[j] & (kIndexBlock - 1));
      std::memcpy(offsets + 2 * j, &offset, 2);
    }
    const uint32_t end = static_cast<uint32_t>(j);
    std::memcpy(ends + 4 * b, &end, 4);
  }
}

// The K indices of a payload, checked: each below count and above the one
// before it (so no element is written twice); blocked indices' running
// counts must rise to exactly K.
void readIndices(const DecodeExpect& x, const PayloadLayout& l, const uint8_t* payload, uint32_t* idx) {
  const size_t k = l.selected;
  if (l.indexBlocks == 0) {
    copyBytes(idx, payload + l.params, k * 4);
  } else {
    const uint8_t* ends = payload + l.params;
    const uint8_t* offsets = ends + 4 * l.indexBlocks;
    size_t j = 0;
    for (size_t b = 0; b < l.indexBlocks; ++b) {
      uint32_t end;
      std::memcpy(&end, ends + 4 * b, 4);
      SQZ_REQUIRE(end >= j && end <= k, sqzInvalidUsage,
                  "payload index block %zu ends at %u, outside [%zu, %zu] (blocked top-K indices)", b, end, j, k);
      for (; j < end; ++j) {
        uint16_t offset;
        std::memcpy(&offset, offsets + 2 * j, 2);
        idx[j] = static_cast<uint32_t>(b * kIndexBlock + offset);
      }
    }
    SQZ_REQUIRE(j == k, sqzInvalidUsage, "payload index blocks hold %zu indices, not K = %zu", j, k);
  }
  for (size_t j = 0; j < k; ++j)
    SQZ_REQUIRE(sparseIndexOk(idx, j, x.count), sqzInvalidUsage,
                "payload index %u at %zu out of range (count %llu) or not above the one before it", idx[j], j,
                static_cast<unsigned long long>(x.count));
}

template <class T>
size_t encodeTopK(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload) {
  const size_t n = a.count, k = l.selected;
  // y = g + e lives where it ends up: in the residual (e' = y except at the
  // K sent indices), or is the fp32 input itself; no n-element scratch.
  std::vector<float> own;
  const float* g = nullptr;
  const float* y;
  if (a.residual && std::is_same<T, float>::value) {
    g = typed<float>(a.input);  // g + e formed by the selecting pass itself
    y = a.residual;
  } else if (a.residual) {
    addInPlace(typed<T>(a.input), a.residual, n);
    y = a.residual;
  } else if (std::is_same<T, float>::value) {
    y = typed<float>(a.input);
  } else {
    own.resize(n);
    loadY(typed<T>(a.input), nullptr, n, own.data());
    y = own.data();
  }
  TopKPick pick;
  selectTopK(g, g ? a.residual : nullptr, y, n, k, pick);
  writeIndices(pick.idx.data(), k, l, payload);
  const std::vector<float>& v = pick.val;
  std::vector<float> dec(k);
  size_t bad = writeValues(p.values, v.data(), k, l, payload, dec.data());
  if (a.residual) {
    for (size_t j = 0; j < k; ++j) a.residual[pick.idx[j]] = fsubRn(v[j], dec[j]);
  }
  return bad;
}

// Values as decoded from the payload (validated first).
void readValues(ValueFormat f, const PayloadLayout& l, const uint8_t* payload, float* dec) {
  if (f == ValueFormat::Fp32) {
    copyBytes(dec, payload + l.body, l.selected * 4);
  } else if (f == ValueFormat::Bf16) {
    const uint8_t* in = payload + l.body;
    for (size_t j = 0; j < l.selected; ++j) {
      uint16_t b;
      std::memcpy(&b, in + 2 * j, 2);
      dec[j] = bf16ToFloat(b);
    }
  } else {
    float scale;
    std::memcpy(&scale, payload + l.scale, 4);
    SQZ_REQUIRE(valueScaleOk(scale), sqzInvalidUsage, "payload value scale is not finite");
    const int8_t* in = reinterpret_cast<const int8_t*>(payload + l.body);
    for (size_t j = 0; j < l.selected; ++j) dec[j] = int8Decode(in[j], scale);
  }
}

void decodeTopK(const DecodeExpect& x, const PayloadLayout& l, const uint8_t* payload, float* out, DecodeMode mode) {
  const size_t k = l.selected;
  std::vector<uint32_t> idx(k);
  readIndices(x, l, payload, idx.data());
  std::vector<float> dec(k);
  readValues(x.params.values, l, payload, dec.data());
  if (mode == DecodeMode::Overwrite) zeroFloats(out, x.count);
  for (size_t j = 0; j < k; ++j) out[idx[j]] = faddRn(out[idx[j]], dec[j]);
}

// ---- random-K --------------------------------------------------------------------

template <class T>
size_t gatherRandK(const CodecParams& p, const EncodeArgs& a, size_t k, float* v) {
  const T* g = typed<T>(a.input);
  const RngKey key = makeRngKey(a.seed, a.step, 0);
  for (size_t j = 0; j < k; ++j) {
    uint64_t i = randkIndex(j, a.count, k, key, a.chunkOffset);
    float y = a.residual ? faddRn(toFloat(g[i]), a.residual[i]) : toFloat(g[i]);
    v[j] = p.rescale ? fmulRn(y, randkScale(j, a.count, k)) : y;
  }
  return 0;
}

// e' = y - decoded everywhere: y where nothing was sent. Rescaled values
// are an unbiased estimate of all of y and go without error feedback (fed
// back, the rescaled values' error would grow the residual without bound):
// e' = 0.
template <class T>
void randkResidual(const EncodeArgs& a, bool rescale, size_t k, const float* y, const float* dec) {
  if (!a.residual) return;
  if (rescale) {
    std::memset(a.residual, 0, a.count * sizeof(float));
    return;
  }
  const RngKey key = makeRngKey(a.seed, a.step, 0);
  const T* g = typed<T>(a.input);
  float* e = a.residual;
  // y at the selected indices must be read before e is overwritten: it is
  // passed in (already gathered, before rescaling).
  for (size_t i = 0; i < a.count; ++i) e[i] = faddRn(toFloat(g[i]), e[i]);
  for (size_t j = 0; j < k; ++j) {
    uint64_t i = randkIndex(j, a.count, k, key, a.chunkOffset);
    e[i] = fsubRn(y[j], dec[j]);
  }
}

template <class T>
size_t encodeRandK(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload) {
  const size_t k = l.selected;
  std::vector<float> v(k), y(k), dec(k);
  CodecParams plain = p;
  plain.rescale = false;
  gatherRandK<T>(plain, a, k, y.data());
  for (size_t j = 0; j < k; ++j) v[j] = p.rescale ? fmulRn(y[j], randkScale(j, a.count, k)) : y[j];
  size_t bad = writeValues(p.values, v.data(), k, l, payload, dec.data());
  randkResidual<T>(a, p.rescale, k, y.data(), dec.data());
  return bad;
}

void decodeRandK(const DecodeExpect& x, const PayloadLayout& l, const uint8_t* payload, float* out, DecodeMode mode) {
  std::vector<float> dec(l.selected);
  readValues(x.params.values, l, payload, dec.data());
  randkScatterCpu(x.params, x.count, x.seed, x.step, x.chunkOffset, dec.data(), out, mode);
}

// ---- dispatch ----------------------------------------------------------------------

template <class T>
size_t encodeTyped(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload) {
  switch (p.kind) {
    case CodecKind::None: encodeCast<T, CodecKind::None>(a, payload + l.body); return 0;
    case CodecKind::Bf16: encodeCast<T, CodecKind::Bf16>(a, payload + l.body); return 0;
    case CodecKind::Fp16: encodeCast<T, CodecKind::Fp16>(a, payload + l.body); return 0;
    case CodecKind::Quant:
      switch (p.bits) {
        case 1: return encodeQuant<T, 1>(p, a, l, payload);
        case 2: return encodeQuant<T, 2>(p, a, l, payload);
        case 4: return encodeQuant<T, 4>(p, a, l, payload);
        default: return encodeQuant<T, 8>(p, a, l, payload);
      }
    case CodecKind::Sign: return encodeSign<T>(p, a, l, payload);
    case CodecKind::TopK: return encodeTopK<T>(p, a, l, payload);
    case CodecKind::RandK: return encodeRandK<T>(p, a, l, payload);
  }
  return 0;
}

template <class T>
void statsTyped(const T* g, const float* e, size_t count, GradStats* st) {
  std::vector<float> y(kStatsBlockSize);
  double sumSq = 0.0, bad = 0.0, var[GradStats::kQuantWidths] = {0, 0, 0, 0}, signKept = 0.0, signAligned = 0.0,
         rotCommon = 0.0, rotError = 0.0;
  for (size_t s = 0; s < count; s += kStatsBlockSize) {
    const size_t n = std::min<size_t>(kStatsBlockSize, count - s);
    loadY(g + s, e ? e + s : nullptr, n, y.data());
    float lo = INFINITY, hi = -INFINITY;
    double sumAbs = 0.0, blockSq = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const float v = y[i];
      const uint32_t key = magnitudeKey(v);
      if (key > kMaxQuantizableBits) {
        bad += 1.0;
        continue;
      }
      sumAbs += std::fabs(static_cast<double>(v));
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
      const double sq = static_cast<double>(v) * v;
      sumSq += sq;
      blockSq += sq;
      const int b = statsBin(key);
      st->binCount[b] += 1.0;
      st->binSumSq[b] += sq;
    }
    if (lo <= hi) {
      const double range = static_cast<double>(hi) - lo;
      for (int w = 0; w < GradStats::kQuantWidths; ++w) {
        const double d = range / maxCode(quantWidthBits(w));
        var[w] += static_cast<double>(n) * d * d / 4.0;
      }
    }
    double kept, aligned;
    signBlockShares(blockSq, sumAbs, static_cast<double>(n), &kept, &aligned);
    signKept += kept;
    signAligned += aligned;
    if (lo <= hi) {
      const double maxSq = std::fmax(static_cast<double>(lo) * lo, static_cast<double>(hi) * hi);
      double common, error;
      signRotationBlockErrors(blockSq, maxSq, &common, &error);
      rotCommon += common;
      rotError += error;
    }
    st->quantBlocks += 1.0;
  }
  st->signKept += signKept;
  st->signAligned += signAligned;
  st->signRotCommon += rotCommon;
  st->signRotError += rotError;
  st->elements += static_cast<double>(count);
  st->sumSq += sumSq;
  st->nonFinite += bad;
  for (int w = 0; w < GradStats::kQuantWidths; ++w) st->quantVar[w] += var[w];
}

template <class T>
void randkGatherTyped(const CodecParams& p, const EncodeArgs& a, float* values) {
  const size_t k = selectedCount(p, a.count);
  std::vector<float> y(k), dec(k);
  CodecParams plain = p;
  plain.rescale = false;
  gatherRandK<T>(plain, a, k, y.data());
  for (size_t j = 0; j < k; ++j) {
    float v = p.rescale ? fmulRn(y[j], randkScale(j, a.count, k)) : y[j];
    // Summed across ranks in fp32, so only a per-value rounding (bf16) fits.
    values[j] = p.values == ValueFormat::Bf16 ? bf16ToFloat(floatToBf16(v)) : v;
    dec[j] = values[j];
  }
  randkResidual<T>(a, p.rescale, k, y.data(), dec.data());
}

}  // namespace

EncodeResult encodeCpu(const CodecParams& p, const EncodeArgs& a, void* payload, size_t capacity) {
  const PayloadLayout l = payloadLayout(p, a.count, a.stats != nullptr);
  checkEncode(p, a, capacity, l);
  uint8_t* out = static_cast<uint8_t*>(payload);
  std::memset(out, 0, l.body);  // header, stats and padding: no uninitialized bytes on the wire
  if (l.total > l.body) std::memset(out + l.body, 0, l.total - l.body);
  WireHeader h = makeWireHeader(p, a.count, a.chunkOffset, l);
  std::memcpy(out, &h, sizeof h);
  if (a.stats) std::memcpy(out + l.stats, a.stats, sizeof(GradStats));
  EncodeResult r;
  r.bytes = l.total;
  switch (a.dtype) {
    case sqzFloat16: r.nonQuantizable = encodeTyped<Fp16Bits>(p, a, l, out); break;
    case sqzBfloat16: r.nonQuantizable = encodeTyped<Bf16Bits>(p, a, l, out); break;
    default: r.nonQuantizable = encodeTyped<float>(p, a, l, out); break;
  }
  return r;
}

void decodeCpu(const DecodeExpect& x, const void* payload, size_t bytes, float* out, DecodeMode mode,
               GradStats* statsOut) {
  if (const char* why = checkCodecParams(x.params)) fail(sqzInvalidUsage, "codec parameters: %s", why);
  SQZ_REQUIRE(payload != nullptr || bytes == 0, sqzInvalidUsage, "null payload");
  WireHeader h{};
  if (bytes >= sizeof h) std::memcpy(&h, payload, sizeof h);
  if (const char* why = checkWireHeader(h, x, bytes)) fail(sqzInvalidUsage, "malformed payload: %s", why);
  SQZ_REQUIRE(statsOut == nullptr || x.withStats, sqzInvalidUsage, "statistics requested from a payload without them");
  const uint8_t* in = static_cast<const uint8_t*>(payload);
  const PayloadLayout l = payloadLayout(x.params, x.count, x.withStats);
  switch (x.params.kind) {
    case CodecKind::None:
      if (mode == DecodeMode::Overwrite) {
        copyBytes(out, in + l.body, x.count * 4);
      } else {
        const float* v = reinterpret_cast<const float*>(in + l.body);
        for (size_t i = 0; i < x.count; ++i) out[i] = faddRn(out[i], v[i]);
      }
      break;
    case CodecKind::Bf16: {
      const uint16_t* v = reinterpret_cast<const uint16_t*>(in + l.body);
      for (size_t i = 0; i < x.count; ++i) {
        float d = bf16ToFloat(v[i]);
        out[i] = mode == DecodeMode::Accumulate ? faddRn(out[i], d) : d;
      }
      break;
    }
    case CodecKind::Fp16: {
      const uint16_t* v = reinterpret_cast<const uint16_t*>(in + l.body);
      if (mode == DecodeMode::Overwrite) {
        cpusimd::fp16ToFloatN(v, out, x.count);
        break;
      }
      std::vector<float> d(kTile);
      for (size_t s = 0; s < x.count; s += kTile) {
        const size_t n = std::min<size_t>(kTile, x.count - s);
        cpusimd::fp16ToFloatN(v + s, d.data(), n);
        float* o = out + s;
        for (size_t i = 0; i < n; ++i) o[i] = faddRn(o[i], d[i]);
      }
      break;
    }
    case CodecKind::Quant:
      switch (x.params.bits) {
        case 1: decodeQuant<1>(x, l, in, out, mode); break;
        case 2: decodeQuant<2>(x, l, in, out, mode); break;
        case 4: decodeQuant<4>(x, l, in, out, mode); break;
        default: decodeQuant<8>(x, l, in, out, mode); break;
      }
      break;
    case CodecKind::Sign: decodeSign(x, l, in, out, mode); break;
    case CodecKind::TopK: decodeTopK(x, l, in, out, mode); break;
    case CodecKind::RandK: decodeRandK(x, l, in, out, mode); break;
  }
  if (statsOut) std::memcpy(statsOut, in + l.stats, sizeof(GradStats));
}

void gradStatsCpu(const void* input, sqzDataType_t dtype, const float* residual, size_t count, GradStats* stats) {
  SQZ_REQUIRE(stats != nullptr && (input != nullptr || count == 0), sqzInvalidUsage, "null statistics argument");
  switch (dtype) {
    case sqzFloat32: statsTyped(typed<float>(input), residual, count, stats); break;
    case sqzFloat16: statsTyped(typed<Fp16Bits>(input), residual, count, stats); break;
    case sqzBfloat16: statsTyped(typed<Bf16Bits>(input), residual, count, stats); break;
    default: fail(sqzInvalidUsage, "statistics take float32, float16 or bfloat16, not %d", static_cast<int>(dtype));
  }
}

void statsSketchCpu(const void* input, sqzDataType_t dtype, size_t count, uint64_t firstIndex, uint64_t seed,
                    double* buckets) {
  SQZ_REQUIRE(buckets != nullptr && (input != nullptr || count == 0), sqzInvalidUsage, "null sketch argument");
  auto add = [&](auto tag) {
    using T = decltype(tag);
    const T* x = typed<T>(input);
    for (size_t i = 0; i < count; ++i) {
      const float v = toFloat(x[i]);
      if (!quantizable(v)) continue;  // non-finite: counted by the statistics pass, the call goes exact
      const uint64_t j = firstIndex + i;
      buckets[sketchBucket(j, seed)] += sketchSign(j, seed) * static_cast<double>(v);
    }
  };
  switch (dtype) {
    case sqzFloat32: add(float{}); break;
    case sqzFloat16: add(Fp16Bits{}); break;
    case sqzBfloat16: add(Bf16Bits{}); break;
    default: fail(sqzInvalidUsage, "statistics take float32, float16 or bfloat16, not %d", static_cast<int>(dtype));
  }
}

void randkIndicesCpu(const CodecParams& p, size_t count, uint64_t seed, uint64_t step, uint64_t chunkOffset,
                     uint64_t* indices) {
  const size_t k = selectedCount(p, count);
  const RngKey key = makeRngKey(seed, step, 0);
  for (size_t j = 0; j < k; ++j) indices[j] = randkIndex(j, count, k, key, chunkOffset);
}

void randkGatherCpu(const CodecParams& p, const EncodeArgs& a, float* values) {
  if (const char* why = checkCodecParams(p)) fail(sqzInvalidUsage, "codec parameters: %s", why);
  SQZ_REQUIRE(a.count <= kMaxChunkElements, sqzInvalidUsage, "chunk too large");
  switch (a.dtype) {
    case sqzFloat32: randkGatherTyped<float>(p, a, values); break;
    case sqzFloat16: randkGatherTyped<Fp16Bits>(p, a, values); break;
    case sqzBfloat16: randkGatherTyped<Bf16Bits>(p, a, values); break;
    default: fail(sqzInvalidUsage, "random-K takes float32, float16 or bfloat16");
  }
}

void randkScatterCpu(const CodecParams& p, size_t count, uint64_t seed, uint64_t step, uint64_t chunkOffset,
                     const float* values, float* out, DecodeMode mode) {
  const size_t k = selectedCount(p, count);
  const RngKey key = makeRngKey(seed, step, 0);
  if (mode == DecodeMode::Overwrite) zeroFloats(out, count);
  for (size_t j = 0; j < k; ++j) {
    uint64_t i = randkIndex(j, count, k, key, chunkOffset);
    out[i] = faddRn(out[i], values[j]);
  }
}

}  // namespace sqz
