// The candidate scan of CPU top-K (included by cpu_codec.cc only): the
// positions whose magnitude key is at or above a threshold, in index order,
// 16 elements per step. With error feedback it also forms y = g + e and
// writes it back into e in the same pass, so the buffer is read once (g and
// e) and written once (e), instead of one pass for y and a second to scan
// it (perf/results/codec_cpu.md). Vector paths for AVX2 and AVX-512 (chosen
// at run time, as the quantizer's); the adds are single fp32 additions, as
// faddRn, so y is bitwise the scalar path's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/codec_math.h"
#include "kernels/cpu_quant_simd.h"

namespace sqz {
namespace cpusimd {

constexpr size_t kScanBlock = 16;

// Scans [start, n): y[i] = Add ? g[i] + yIn[i] : yIn[i] (with Add, written to
// yOut[i]); appends i to cand (at *found) when magnitudeKey(y[i]) >=
// threshold, and y[i] to candVal alongside (so selecting among the
// candidates reads no y again). Stops early when a block's candidates would
// pass `cap`.
// Returns how many elements it finished (n, or fewer when it stopped; with
// Add, exactly those have y in yOut).
template <bool Add>
size_t scanAtLeastBase(const float* g, const float* yIn, float* yOut, size_t start, size_t n, int32_t threshold,
                       uint32_t* cand, float* candVal, size_t cap, size_t* found) {
  size_t i = start, f = *found;
  float y[kScanBlock];
  for (; i + kScanBlock <= n; i += kScanBlock) {
    // Most blocks hold no candidate: test the whole block branch-free first.
    int any = 0;
    for (size_t j = 0; j < kScanBlock; ++j) {
      y[j] = Add ? faddRn(g[i + j], yIn[i + j]) : yIn[i + j];
      any |= static_cast<int32_t>(magnitudeKey(y[j])) >= threshold;
    }
    if (Add)
      for (size_t j = 0; j < kScanBlock; ++j) yOut[i + j] = y[j];
    if (!any) continue;
    if (f + kScanBlock > cap) {
      *found = f;
      return i + kScanBlock;
    }
    for (size_t j = 0; j < kScanBlock; ++j) {
      if (static_cast<int32_t>(magnitudeKey(y[j])) < threshold) continue;
      cand[f] = static_cast<uint32_t>(i + j);
      candVal[f++] = y[j];
    }
  }
  for (; i < n; ++i) {
    const float v = Add ? faddRn(g[i], yIn[i]) : yIn[i];
    if (Add) yOut[i] = v;
    if (static_cast<int32_t>(magnitudeKey(v)) < threshold) continue;
    if (f == cap) {
      *found = f;
      return i + 1;
    }
    cand[f] = static_cast<uint32_t>(i);
    candVal[f++] = v;
  }
  *found = f;
  return n;
}

#if SQZ_CPU_SIMD

// Appends the set bits of `mask` (block at i, values y) to cand and candVal.
inline void appendMask(uint32_t mask, size_t i, const float* y, uint32_t* cand, float* candVal, size_t& f) {
  while (mask) {
    const auto j = static_cast<uint32_t>(__builtin_ctz(mask));
    cand[f] = static_cast<uint32_t>(i) + j;
    candVal[f++] = y[j];
    mask &= mask - 1;
  }
}

template <bool Add>
SQZ_AVX2 size_t scanAtLeastAvx2(const float* g, const float* yIn, float* yOut, size_t n, int32_t threshold,
                                uint32_t* cand, float* candVal, size_t cap, size_t* found) {
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff);
  // key >= t as key > t - 1 (keys and t are in [0, 2^31 - 1]).
  const __m256i below = _mm256_set1_epi32(threshold - 1);
  size_t i = 0, f = *found;
  for (; i + kScanBlock <= n; i += kScanBlock) {
    __m256 a = _mm256_loadu_ps(yIn + i), b = _mm256_loadu_ps(yIn + i + 8);
    if (Add) {
      a = _mm256_add_ps(_mm256_loadu_ps(g + i), a);
      b = _mm256_add_ps(_mm256_loadu_ps(g + i + 8), b);
      _mm256_storeu_ps(yOut + i, a);
      _mm256_storeu_ps(yOut + i + 8, b);
    }
    const __m256i ka = _mm256_and_si256(_mm256_castps_si256(a), absMask);
    const __m256i kb = _mm256_and_si256(_mm256_castps_si256(b), absMask);
    const uint32_t mask =
        static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(ka, below)))) |
        static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(kb, below)))) << 8;
    if (!mask) continue;
    if (f + kScanBlock > cap) {
      *found = f;
      return i + kScanBlock;
    }
    alignas(32) float y[kScanBlock];
    _mm256_store_ps(y, a);
    _mm256_store_ps(y + 8, b);
    appendMask(mask, i, y, cand, candVal, f);
  }
  *found = f;
  return scanAtLeastBase<Add>(g, yIn, yOut, i, n, threshold, cand, candVal, cap, found);
}

template <bool Add>
SQZ_AVX512 size_t scanAtLeast512(const float* g, const float* yIn, float* yOut, size_t n, int32_t threshold,
                                 uint32_t* cand, float* candVal, size_t cap, size_t* found) {
  const __m512i absMask = _mm512_set1_epi32(0x7fffffff);
  const __m512i t = _mm512_set1_epi32(threshold);
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  size_t i = 0, f = *found;
  for (; i + kScanBlock <= n; i += kScanBlock) {
    __m512 y = _mm512_loadu_ps(yIn + i);
    if (Add) {
      y = _mm512_add_ps(_mm512_loadu_ps(g + i), y);
      _mm512_storeu_ps(yOut + i, y);
    }
    const __m512i key = _mm512_and_si512(_mm512_castps_si512(y), absMask);
    const __mmask16 mask = _mm512_cmpge_epi32_mask(key, t);
    if (!mask) continue;
    if (f + kScanBlock > cap) {
      *found = f;
      return i + kScanBlock;
    }
    // Compressed in registers, stored whole (a full block of room is
    // checked above): compress-to-memory is slow on some CPUs.
    const __m512i at = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(i)));
    _mm512_storeu_si512(cand + f, _mm512_maskz_compress_epi32(mask, at));
    _mm512_storeu_ps(candVal + f, _mm512_maskz_compress_ps(mask, y));
    f += static_cast<size_t>(__builtin_popcount(mask));
  }
  *found = f;
  return scanAtLeastBase<Add>(g, yIn, yOut, i, n, threshold, cand, candVal, cap, found);
}

#endif  // SQZ_CPU_SIMD

// scanAtLeastBase on the widest path this CPU (and SQZ_CPU_ISA) allows.
template <bool Add>
size_t scanAtLeast(const float* g, const float* yIn, float* yOut, size_t n, int32_t threshold, uint32_t* cand,
                   float* candVal, size_t cap, size_t* found) {
#if SQZ_CPU_SIMD
  if (activeIsa() == Isa::Avx512) return scanAtLeast512<Add>(g, yIn, yOut, n, threshold, cand, candVal, cap, found);
  if (activeIsa() == Isa::Avx2) return scanAtLeastAvx2<Add>(g, yIn, yOut, n, threshold, cand, candVal, cap, found);
#endif
  return scanAtLeastBase<Add>(g, yIn, yOut, 0, n, threshold, cand, candVal, cap, found);
}

}  // namespace cpusimd
}  // namespace sqz
