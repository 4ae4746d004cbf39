// fp16 <-> fp32 for whole arrays on the CPU (included by cpu_codec.cc only):
// F16C (vcvtps2ph / vcvtph2ps, chosen at run time) with the NaN cases fixed
// up to the exact bits of the portable conversions in kernels/half.h, which
// stay the definition (and what the GPU computes). Equality with half.h is
// tested for every one of the 2^32 floats and 2^16 halves
// (tests/codec/cpu_half_test.cc).
//  - float -> half: round to nearest even (immediate rounding mode, not
//    MXCSR) agrees with half.h for every non-NaN input, overflow to inf and
//    subnormal halves included; a NaN becomes sign | 0x7e00 in half.h while
//    vcvtps2ph keeps payload bits, so NaN lanes are replaced by a NaN
//    without payload first.
//  - half -> float: vcvtph2ps quiets signaling NaNs and half.h does not, so
//    NaN lanes take half.h's sign | 0x7f800000 | mantissa << 13.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu_quant_simd.h"
#include "kernels/half.h"

#if SQZ_CPU_SIMD
#include <cpuid.h>
#endif

namespace sqz {
namespace cpusimd {

inline void floatToFp16Scalar(const float* x, uint16_t* h, size_t n) {
  for (size_t i = 0; i < n; ++i) h[i] = floatToFp16(x[i]);
}
inline void fp16ToFloatScalar(const uint16_t* h, float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = fp16ToFloat(h[i]);
}

#if SQZ_CPU_SIMD

#define SQZ_F16C __attribute__((target("avx2,f16c")))

// AVX2 (which also says the OS saves the YMM state) and F16C (CPUID.1:ECX
// bit 29; clang 14's __builtin_cpu_supports has no "f16c").
inline bool haveF16c() {
  static const bool ok = [] {
    if (activeIsa() == Isa::Base) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    return (c & (1u << 29)) != 0;
  }();
  return ok;
}

SQZ_F16C inline __m128i floatToFp16x8(__m256 v) {
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  const __m256 quiet = _mm256_or_ps(_mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN))),
                                    _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)));
  return _mm256_cvtps_ph(_mm256_blendv_ps(v, quiet, nan), _MM_FROUND_TO_NEAREST_INT);
}

SQZ_F16C inline __m256 fp16ToFloatx8(__m128i h) {
  const __m256i w = _mm256_cvtepu16_epi32(h);
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x7fff)), _mm256_set1_epi32(0x7c00));
  const __m256i exact = _mm256_or_si256(
      _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16), _mm256_set1_epi32(0x7f800000)),
      _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x3ff)), 13));
  return _mm256_blendv_ps(_mm256_cvtph_ps(h), _mm256_castsi256_ps(exact), _mm256_castsi256_ps(nan));
}

SQZ_F16C inline void floatToFp16F16c(const float* x, uint16_t* h, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), floatToFp16x8(_mm256_loadu_ps(x + i)));
  floatToFp16Scalar(x + i, h + i, n - i);
}

SQZ_F16C inline void fp16ToFloatF16c(const uint16_t* h, float* x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, fp16ToFloatx8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  fp16ToFloatScalar(h + i, x + i, n - i);
}

inline void floatToFp16N(const float* x, uint16_t* h, size_t n) {
  if (haveF16c()) return floatToFp16F16c(x, h, n);
  floatToFp16Scalar(x, h, n);
}
inline void fp16ToFloatN(const uint16_t* h, float* x, size_t n) {
  if (haveF16c()) return fp16ToFloatF16c(h, x, n);
  fp16ToFloatScalar(h, x, n);
}

#else

inline bool haveF16c() { return false; }
inline void floatToFp16N(const float* x, uint16_t* h, size_t n) { floatToFp16Scalar(x, h, n); }
inline void fp16ToFloatN(const uint16_t* h, float* x, size_t n) { fp16ToFloatScalar(h, x, n); }

#endif  // SQZ_CPU_SIMD

}  // namespace cpusimd
}  // namespace sqz
