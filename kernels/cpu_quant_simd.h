// Vectorized blockwise quantizer for fp32 input (x86 AVX2 / AVX-512, chosen
// at run time; included by cpu_codec.cc only). One block is read once:
//   pass 1: y = g + e into an L1 scratch, block min/max over quantizable y
//           and the count of the others, all in registers;
//   Philox for the block's groups of eight, several groups per vector;
//   pass 2: codes, residual e' = y - (lo + code * delta), packed codes.
// Every float operation is the one of kernels/codec_math.h, in the same
// order and with the same operands (no FMA: the intrinsics are separate
// multiplies and adds), so the payload bytes and residual bits equal the
// per-element math's, and the GPU's (tests/codec/cpu_reference_test.cc).
// Notes on equivalence:
//  - max_ps(v, 0) is exactly `v > 0 ? v : 0` (NaN -> 0) and min_ps(v, c)
//    `v < c ? v : c` (MAXPS/MINPS return the second operand unless the
//    first compares greater/less).
//  - block min/max: only quantizable values enter, so only the sign of a
//    zero can depend on the order, and makeQuantBlock adds +0 to both ends.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/codec_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SQZ_CPU_SIMD 1
// GCC 12's AVX-512 intrinsics pass an intentionally undefined vector
// (_mm512_undefined_*) as the masked-off source, which -Wuninitialized and
// -Wmaybe-uninitialized flag once inlined (a known false positive); silenced
// for the intrinsics header's own lines only. GCC only: clang knows no
// -Wmaybe-uninitialized and would warn about the pragma itself.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#else
#define SQZ_CPU_SIMD 0
#endif

namespace sqz {
namespace cpusimd {

enum class Isa : uint8_t { Base, Avx2, Avx512 };

#if SQZ_CPU_SIMD

// SQZ_CPU_ISA=base|avx2|avx512 caps the choice (for benchmarks and tests).
inline Isa detectIsa() {
  __builtin_cpu_init();
  Isa best = Isa::Base;
  if (__builtin_cpu_supports("avx2")) best = Isa::Avx2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    best = Isa::Avx512;
  return best;
}

inline Isa chosenIsa() {
  const Isa have = detectIsa();
  Isa want = have;
  if (const char* env = std::getenv("SQZ_CPU_ISA")) {
    if (std::strcmp(env, "base") == 0) want = Isa::Base;
    if (std::strcmp(env, "avx2") == 0) want = Isa::Avx2;
  }
  return static_cast<uint8_t>(want) < static_cast<uint8_t>(have) ? want : have;
}

inline Isa activeIsa() {
  static const Isa isa = chosenIsa();
  return isa;
}

#define SQZ_AVX2 __attribute__((target("avx2")))
#define SQZ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2")))

// ---- Philox, four groups per 256-bit vector ----------------------------------
// Each 64-bit lane holds one group's counter word in its low half;
// _mm256_mul_epu32 gives the full 32x32->64 product, so hi = p >> 32 and
// lo = p (the high half of lo is junk that only ever reaches another
// multiply's ignored high half or the final 32-bit extraction).
struct Philox4Lanes {
  __m256i c0, c1, c2, c3;
};

SQZ_AVX2 inline void philoxRounds(Philox4Lanes& a, Philox4Lanes& b, uint32_t k0, uint32_t k1) {
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53u), m1 = _mm256_set1_epi64x(0xCD9E8D57u);
  for (int r = 0; r < kPhiloxRounds; ++r) {
    const __m256i kk0 = _mm256_set1_epi64x(k0), kk1 = _mm256_set1_epi64x(k1);
    const __m256i pa0 = _mm256_mul_epu32(a.c0, m0), pa1 = _mm256_mul_epu32(a.c2, m1);
    const __m256i pb0 = _mm256_mul_epu32(b.c0, m0), pb1 = _mm256_mul_epu32(b.c2, m1);
    const __m256i na0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa1, 32), a.c1), kk0);
    const __m256i na2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa0, 32), a.c3), kk1);
    const __m256i nb0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb1, 32), b.c1), kk0);
    const __m256i nb2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb0, 32), b.c3), kk1);
    a.c0 = na0, a.c1 = pa1, a.c2 = na2, a.c3 = pa0;
    b.c0 = nb0, b.c1 = pb1, b.c2 = nb2, b.c3 = pb0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// The 16 bytes of groups j..j+3 (words v0..v3 of each) to out[0..63].
SQZ_AVX2 inline void philoxStore(const Philox4Lanes& s, uint16_t* out) {
  const __m256i a01 = _mm256_blend_epi32(s.c0, _mm256_slli_epi64(s.c1, 32), 0xAA);
  const __m256i a23 = _mm256_blend_epi32(s.c2, _mm256_slli_epi64(s.c3, 32), 0xAA);
  const __m256i x = _mm256_unpacklo_epi64(a01, a23);  // group 0 | group 2
  const __m256i y = _mm256_unpackhi_epi64(a01, a23);  // group 1 | group 3
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(x, y, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(x, y, 0x31));
}

SQZ_AVX2 inline Philox4Lanes philoxInit(const RngKey& key, uint64_t g) {
  const __m256i grp = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(g)), _mm256_setr_epi64x(0, 1, 2, 3));
  return Philox4Lanes{grp, _mm256_srli_epi64(grp, 32), _mm256_set1_epi64x(key.step), _mm256_set1_epi64x(key.rank)};
}

// The 16-bit words of groups g0 .. g0 + groups - 1 (rounded up to 8) into tmp.
SQZ_AVX2 inline void philoxHalfWordsAvx2(const RngKey& key, uint64_t g0, size_t groups, uint16_t* tmp) {
  for (size_t j = 0; j < groups; j += 8) {
    Philox4Lanes a = philoxInit(key, g0 + j), b = philoxInit(key, g0 + j + 4);
    philoxRounds(a, b, key.k0, key.k1);
    philoxStore(a, tmp + 8 * j);
    philoxStore(b, tmp + 8 * j + 32);
  }
}

// ---- AVX2 block quantizer ------------------------------------------------------

// Pass 1: y = g (+ e), block range; returns the non-quantizable count.
template <bool EF>
SQZ_AVX2 inline size_t loadRangeAvx2(const float* g, const float* e, size_t n, float* y, float* loOut, float* hiOut) {
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lim = _mm256_set1_ps(0x1p126f);
  const __m256 pinf = _mm256_set1_ps(INFINITY), ninf = _mm256_set1_ps(-INFINITY);
  __m256 lo0 = pinf, lo1 = pinf, hi0 = ninf, hi1 = ninf;
  __m256i ok0 = _mm256_setzero_si256(), ok1 = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 v0 = _mm256_loadu_ps(g + i), v1 = _mm256_loadu_ps(g + i + 8);
    if (EF) v0 = _mm256_add_ps(v0, _mm256_loadu_ps(e + i)), v1 = _mm256_add_ps(v1, _mm256_loadu_ps(e + i + 8));
    _mm256_storeu_ps(y + i, v0);
    _mm256_storeu_ps(y + i + 8, v1);
    const __m256 q0 = _mm256_cmp_ps(_mm256_and_ps(v0, absMask), lim, _CMP_LE_OQ);
    const __m256 q1 = _mm256_cmp_ps(_mm256_and_ps(v1, absMask), lim, _CMP_LE_OQ);
    lo0 = _mm256_min_ps(lo0, _mm256_blendv_ps(pinf, v0, q0));
    hi0 = _mm256_max_ps(hi0, _mm256_blendv_ps(ninf, v0, q0));
    lo1 = _mm256_min_ps(lo1, _mm256_blendv_ps(pinf, v1, q1));
    hi1 = _mm256_max_ps(hi1, _mm256_blendv_ps(ninf, v1, q1));
    ok0 = _mm256_sub_epi32(ok0, _mm256_castps_si256(q0));
    ok1 = _mm256_sub_epi32(ok1, _mm256_castps_si256(q1));
  }
  for (; i < n; i += 8) {  // n is a multiple of 8
    __m256 v0 = _mm256_loadu_ps(g + i);
    if (EF) v0 = _mm256_add_ps(v0, _mm256_loadu_ps(e + i));
    _mm256_storeu_ps(y + i, v0);
    const __m256 q0 = _mm256_cmp_ps(_mm256_and_ps(v0, absMask), lim, _CMP_LE_OQ);
    lo0 = _mm256_min_ps(lo0, _mm256_blendv_ps(pinf, v0, q0));
    hi0 = _mm256_max_ps(hi0, _mm256_blendv_ps(ninf, v0, q0));
    ok0 = _mm256_sub_epi32(ok0, _mm256_castps_si256(q0));
  }
  lo0 = _mm256_min_ps(lo0, lo1);
  hi0 = _mm256_max_ps(hi0, hi1);
  alignas(32) float l[8], h[8];
  alignas(32) uint32_t c[8];
  _mm256_store_ps(l, lo0);
  _mm256_store_ps(h, hi0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(c), _mm256_add_epi32(ok0, ok1));
  float lo = l[0], hi = h[0];
  size_t ok = c[0];
  for (int k = 1; k < 8; ++k) {
    lo = l[k] < lo ? l[k] : lo;
    hi = h[k] > hi ? h[k] : hi;
    ok += c[k];
  }
  *loOut = lo;
  *hiOut = hi;
  return n - ok;
}

// Eight codes of y[0..7] (int32 lanes), and the residual when EF.
template <bool EF, bool Stochastic>
SQZ_AVX2 inline __m256i quant8Avx2(const float* y, const uint16_t* rnd, float* e, __m256 lo, __m256 inv, __m256 delta,
                                   __m256 maxc) {
  const __m256 yv = _mm256_loadu_ps(y);
  __m256 u;
  if (Stochastic) {
    const __m256i r = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rnd)));
    u = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(r), _mm256_set1_ps(1.52587890625e-05f)),
                      _mm256_set1_ps(7.62939453125e-06f));
  } else {
    u = _mm256_set1_ps(0.5f);
  }
  __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(yv, lo), inv), u);
  v = _mm256_max_ps(v, _mm256_setzero_ps());
  v = _mm256_min_ps(v, maxc);
  const __m256i c = _mm256_cvttps_epi32(v);
  if (EF) {
    const __m256 d = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_cvtepi32_ps(c), delta));
    _mm256_storeu_ps(e, _mm256_sub_ps(yv, d));
  }
  return c;
}

// Pass 2 over one block (n a multiple of 8); rnd[i] is element i's word;
// e is written only when EF (pass any valid pointer otherwise).
template <unsigned Bits, bool EF, bool Stochastic>
SQZ_AVX2 inline void quantPackAvx2(const float* y, const uint16_t* rnd, float* e, size_t n, const QuantBlock& qb,
                                   uint8_t* out) {
  const __m256 lo = _mm256_set1_ps(qb.lo), inv = _mm256_set1_ps(qb.inv), delta = _mm256_set1_ps(qb.delta);
  const __m256 maxc = _mm256_set1_ps(static_cast<float>(maxCode(Bits)));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i c0 = quant8Avx2<EF, Stochastic>(y + i, rnd + i, e + i, lo, inv, delta, maxc);
    const __m256i c1 = quant8Avx2<EF, Stochastic>(y + i + 8, rnd + i + 8, e + i + 8, lo, inv, delta, maxc);
    const __m256i c2 = quant8Avx2<EF, Stochastic>(y + i + 16, rnd + i + 16, e + i + 16, lo, inv, delta, maxc);
    const __m256i c3 = quant8Avx2<EF, Stochastic>(y + i + 24, rnd + i + 24, e + i + 24, lo, inv, delta, maxc);
    // 32 codes as 32 bytes, in order.
    const __m256i b = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3)), order);
    uint8_t* o = out + i * Bits / 8;
    if (Bits == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), b);
    } else if (Bits == 4) {
      // byte j = c[2j] | c[2j+1] << 4: the low byte of each 16-bit lane.
      const __m256i w = _mm256_or_si256(b, _mm256_srli_epi16(b, 4));
      const __m256i even = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1, 0, 2, 4, 6, 8,
                                            10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
      const __m256i s = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(w, even), 0x08);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(s));
    } else if (Bits == 2) {
      // byte j = c[4j] | c[4j+1] << 2 | c[4j+2] << 4 | c[4j+3] << 6.
      const __m256i m1 = _mm256_maddubs_epi16(b, _mm256_set1_epi16(0x0401));
      const __m256i m2 = _mm256_madd_epi16(m1, _mm256_set1_epi32(0x00100001));
      const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12,
                                            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
      const __m256i s = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(m2, pick), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(s));
    } else {
      const uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(b, 7)));
      std::memcpy(o, &m, 4);
    }
  }
  for (; i < n; i += 8) {  // blocks that are not a multiple of 32
    const __m256i c = quant8Avx2<EF, Stochastic>(y + i, rnd + i, e + i, lo, inv, delta, maxc);
    alignas(32) uint32_t cs[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(cs), c);
    constexpr unsigned per = 8 / Bits;
    for (unsigned j = 0; j < Bits; ++j) {
      unsigned byte = 0;
      for (unsigned k = 0; k < per; ++k) byte |= cs[j * per + k] << (k * Bits);
      out[i * Bits / 8 + j] = static_cast<uint8_t>(byte);
    }
  }
}

// Encodes the full blocks [0, blocks) of an fp32 chunk. rnd holds
// B + 64 words, y B floats. Returns the non-quantizable count.
template <unsigned Bits, bool EF, bool Stochastic>
SQZ_AVX2 size_t encodeFullBlocksAvx2(const float* g, float* e, size_t blocks, size_t B, const RngKey& key,
                                     uint64_t chunkOffset, float* params, uint8_t* codes, float* y, uint16_t* rnd) {
  size_t bad = 0;
  for (size_t blk = 0; blk < blocks; ++blk) {
    const size_t s = blk * B;
    float lo, hi;
    bad += loadRangeAvx2<EF>(g + s, EF ? e + s : nullptr, B, y, &lo, &hi);
    const QuantBlock qb = makeQuantBlock(lo, hi, Bits);
    params[2 * blk] = qb.lo;
    params[2 * blk + 1] = qb.delta;
    const uint16_t* r = rnd;
    if (Stochastic) {
      const uint64_t gi0 = chunkOffset + s, g0 = gi0 >> 3;
      philoxHalfWordsAvx2(key, g0, ((gi0 + B + 7) >> 3) - g0, rnd);
      r = rnd + (gi0 & 7);
    }
    quantPackAvx2<Bits, EF, Stochastic>(y, r, EF ? e + s : y, B, qb, codes + s * Bits / 8);
  }
  return bad;
}

// ---- AVX-512: the same passes, sixteen lanes -------------------------------------

constexpr int kRn = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
SQZ_AVX512 inline __m512 add512(__m512 a, __m512 b) { return _mm512_add_round_ps(a, b, kRn); }
SQZ_AVX512 inline __m512 sub512(__m512 a, __m512 b) { return _mm512_sub_round_ps(a, b, kRn); }
SQZ_AVX512 inline __m512 mul512(__m512 a, __m512 b) { return _mm512_mul_round_ps(a, b, kRn); }

struct Philox8Lanes {
  __m512i c0, c1, c2, c3;
};

SQZ_AVX512 inline void philoxRounds512(Philox8Lanes& a, Philox8Lanes& b, uint32_t k0, uint32_t k1) {
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53u), m1 = _mm512_set1_epi64(0xCD9E8D57u);
  for (int r = 0; r < kPhiloxRounds; ++r) {
    const __m512i kk0 = _mm512_set1_epi64(k0), kk1 = _mm512_set1_epi64(k1);
    const __m512i pa0 = _mm512_mul_epu32(a.c0, m0), pa1 = _mm512_mul_epu32(a.c2, m1);
    const __m512i pb0 = _mm512_mul_epu32(b.c0, m0), pb1 = _mm512_mul_epu32(b.c2, m1);
    // xor of three: ternary logic 0x96.
    const __m512i na0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pa1, 32), a.c1, kk0, 0x96);
    const __m512i na2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pa0, 32), a.c3, kk1, 0x96);
    const __m512i nb0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pb1, 32), b.c1, kk0, 0x96);
    const __m512i nb2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pb0, 32), b.c3, kk1, 0x96);
    a.c0 = na0, a.c1 = pa1, a.c2 = na2, a.c3 = pa0;
    b.c0 = nb0, b.c1 = pb1, b.c2 = nb2, b.c3 = pb0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Groups j..j+7 (16 bytes each) to out[0..127].
SQZ_AVX512 inline void philoxStore512(const Philox8Lanes& s, uint16_t* out) {
  const __m512i a01 = _mm512_mask_blend_epi32(0xAAAA, s.c0, _mm512_slli_epi64(s.c1, 32));
  const __m512i a23 = _mm512_mask_blend_epi32(0xAAAA, s.c2, _mm512_slli_epi64(s.c3, 32));
  // 128-bit lane k of x: group 2k; of y: group 2k+1.
  const __m512i x = _mm512_unpacklo_epi64(a01, a23);
  const __m512i y = _mm512_unpackhi_epi64(a01, a23);
  // Interleave the 128-bit lanes: x0 y0 x1 y1 | x2 y2 x3 y3.
  const __m512i lo = _mm512_permutex2var_epi64(x, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), y);
  const __m512i hi = _mm512_permutex2var_epi64(x, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), y);
  _mm512_storeu_si512(out, lo);
  _mm512_storeu_si512(out + 32, hi);
}

SQZ_AVX512 inline Philox8Lanes philoxInit512(const RngKey& key, uint64_t g) {
  const __m512i grp =
      _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(g)), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
  return Philox8Lanes{grp, _mm512_srli_epi64(grp, 32), _mm512_set1_epi64(key.step), _mm512_set1_epi64(key.rank)};
}

SQZ_AVX512 inline void philoxHalfWords512(const RngKey& key, uint64_t g0, size_t groups, uint16_t* tmp) {
  for (size_t j = 0; j < groups; j += 16) {
    Philox8Lanes a = philoxInit512(key, g0 + j), b = philoxInit512(key, g0 + j + 8);
    philoxRounds512(a, b, key.k0, key.k1);
    philoxStore512(a, tmp + 8 * j);
    philoxStore512(b, tmp + 8 * j + 64);
  }
}

template <bool EF>
SQZ_AVX512 inline size_t loadRange512(const float* g, const float* e, size_t n, float* y, float* loOut, float* hiOut) {
  const __m512 lim = _mm512_set1_ps(0x1p126f);
  const __m512 pinf = _mm512_set1_ps(INFINITY), ninf = _mm512_set1_ps(-INFINITY);
  __m512 lo0 = pinf, lo1 = pinf, hi0 = ninf, hi1 = ninf;
  size_t ok = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 v0 = _mm512_loadu_ps(g + i), v1 = _mm512_loadu_ps(g + i + 16);
    if (EF) v0 = add512(v0, _mm512_loadu_ps(e + i)), v1 = add512(v1, _mm512_loadu_ps(e + i + 16));
    _mm512_storeu_ps(y + i, v0);
    _mm512_storeu_ps(y + i + 16, v1);
    const __mmask16 q0 = _mm512_cmp_ps_mask(_mm512_abs_ps(v0), lim, _CMP_LE_OQ);
    const __mmask16 q1 = _mm512_cmp_ps_mask(_mm512_abs_ps(v1), lim, _CMP_LE_OQ);
    lo0 = _mm512_mask_min_ps(lo0, q0, lo0, v0);
    hi0 = _mm512_mask_max_ps(hi0, q0, hi0, v0);
    lo1 = _mm512_mask_min_ps(lo1, q1, lo1, v1);
    hi1 = _mm512_mask_max_ps(hi1, q1, hi1, v1);
    ok += static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(q0) | (static_cast<unsigned>(q1) << 16)));
  }
  for (; i < n; i += 8) {  // n is a multiple of 8
    const __mmask16 m = 0xff;
    __m512 v0 = _mm512_maskz_loadu_ps(m, g + i);
    if (EF) v0 = add512(v0, _mm512_maskz_loadu_ps(m, e + i));
    _mm512_mask_storeu_ps(y + i, m, v0);
    const __mmask16 q0 = _mm512_cmp_ps_mask(_mm512_abs_ps(v0), lim, _CMP_LE_OQ) & m;
    lo0 = _mm512_mask_min_ps(lo0, q0, lo0, v0);
    hi0 = _mm512_mask_max_ps(hi0, q0, hi0, v0);
    ok += static_cast<size_t>(__builtin_popcount(q0));
  }
  lo0 = _mm512_min_ps(lo0, lo1);
  hi0 = _mm512_max_ps(hi0, hi1);
  alignas(64) float l[16], h[16];
  _mm512_store_ps(l, lo0);
  _mm512_store_ps(h, hi0);
  float lo = l[0], hi = h[0];
  for (int k = 1; k < 16; ++k) {
    lo = l[k] < lo ? l[k] : lo;
    hi = h[k] > hi ? h[k] : hi;
  }
  *loOut = lo;
  *hiOut = hi;
  return n - ok;
}

template <bool EF, bool Stochastic>
SQZ_AVX512 inline __m512i quant16Avx512(const float* y, const uint16_t* rnd, float* e, __m512 lo, __m512 inv,
                                        __m512 delta, __m512 maxc) {
  const __m512 yv = _mm512_loadu_ps(y);
  __m512 u;
  if (Stochastic) {
    const __m512i r = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rnd)));
    u = add512(mul512(_mm512_cvtepi32_ps(r), _mm512_set1_ps(1.52587890625e-05f)), _mm512_set1_ps(7.62939453125e-06f));
  } else {
    u = _mm512_set1_ps(0.5f);
  }
  // AVX-512 implies FMA: the explicitly rounded forms are builtins that the
  // compiler never contracts, whatever -ffp-contract says (round to nearest,
  // the default mode, as in the scalar code).
  __m512 v = add512(mul512(sub512(yv, lo), inv), u);
  v = _mm512_max_ps(v, _mm512_setzero_ps());
  v = _mm512_min_ps(v, maxc);
  const __m512i c = _mm512_cvttps_epi32(v);
  if (EF) {
    const __m512 d = add512(lo, mul512(_mm512_cvtepi32_ps(c), delta));
    _mm512_storeu_ps(e, sub512(yv, d));
  }
  return c;
}

template <unsigned Bits, bool EF, bool Stochastic>
SQZ_AVX512 inline void quantPack512(const float* y, const uint16_t* rnd, float* e, size_t n, const QuantBlock& qb,
                                    uint8_t* out) {
  const __m512 lo = _mm512_set1_ps(qb.lo), inv = _mm512_set1_ps(qb.inv), delta = _mm512_set1_ps(qb.delta);
  const __m512 maxc = _mm512_set1_ps(static_cast<float>(maxCode(Bits)));
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i c0 = quant16Avx512<EF, Stochastic>(y + i, rnd + i, e + i, lo, inv, delta, maxc);
    const __m512i c1 = quant16Avx512<EF, Stochastic>(y + i + 16, rnd + i + 16, e + i + 16, lo, inv, delta, maxc);
    // 32 codes as bytes, in order (vpmovdb truncates; codes are < 256).
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(c0)),
                                              _mm512_cvtepi32_epi8(c1), 1);
    uint8_t* o = out + i * Bits / 8;
    if (Bits == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), b);
    } else if (Bits == 4) {
      const __m256i w = _mm256_or_si256(b, _mm256_srli_epi16(b, 4));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_cvtepi16_epi8(w));
    } else if (Bits == 2) {
      const __m256i m1 = _mm256_maddubs_epi16(b, _mm256_set1_epi16(0x0401));
      const __m256i m2 = _mm256_madd_epi16(m1, _mm256_set1_epi32(0x00100001));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm256_cvtepi32_epi8(m2));
    } else {
      const uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(b, 7)));
      std::memcpy(o, &m, 4);
    }
  }
  if (i < n) quantPackAvx2<Bits, EF, Stochastic>(y + i, rnd + i, e + i, n - i, qb, out + i * Bits / 8);
}

template <unsigned Bits, bool EF, bool Stochastic>
SQZ_AVX512 size_t encodeFullBlocks512(const float* g, float* e, size_t blocks, size_t B, const RngKey& key,
                                      uint64_t chunkOffset, float* params, uint8_t* codes, float* y, uint16_t* rnd) {
  size_t bad = 0;
  for (size_t blk = 0; blk < blocks; ++blk) {
    const size_t s = blk * B;
    float lo, hi;
    bad += loadRange512<EF>(g + s, EF ? e + s : nullptr, B, y, &lo, &hi);
    const QuantBlock qb = makeQuantBlock(lo, hi, Bits);
    params[2 * blk] = qb.lo;
    params[2 * blk + 1] = qb.delta;
    const uint16_t* r = rnd;
    if (Stochastic) {
      const uint64_t gi0 = chunkOffset + s, g0 = gi0 >> 3;
      philoxHalfWords512(key, g0, ((gi0 + B + 7) >> 3) - g0, rnd);
      r = rnd + (gi0 & 7);
    }
    quantPack512<Bits, EF, Stochastic>(y, r, EF ? e + s : y, B, qb, codes + s * Bits / 8);
  }
  return bad;
}

#else

inline Isa activeIsa() { return Isa::Base; }

#endif  // SQZ_CPU_SIMD

}  // namespace cpusimd
}  // namespace sqz
