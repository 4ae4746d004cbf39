// Per-element codec math, written once for host and device. Every float
// operation whose rounding matters goes through an *Rn helper so nvcc cannot
// contract it into an FMA and the CPU (compiled with -ffp-contract=off) gives
// the same bits: that is what makes CPU and GPU payloads byte-identical.
#pragma once

#include <cstdint>

#include "kernels/codec_params.h"
#include "kernels/half.h"
#include "kernels/philox.h"

namespace sqz {

SQZ_HD float fmulRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SQZ_HD float faddRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
SQZ_HD float fsubRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
SQZ_HD float fdivRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

SQZ_HD double daddRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
SQZ_HD double ddivRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// Inputs of every supported type are computed on in fp32.
struct Bf16Bits { uint16_t bits; };
struct Fp16Bits { uint16_t bits; };
SQZ_HD float toFloat(float x) { return x; }
SQZ_HD float toFloat(Bf16Bits x) { return bf16ToFloat(x.bits); }
SQZ_HD float toFloat(Fp16Bits x) { return fp16ToFloat(x.bits); }

// Quantizers only represent |x| <= 2^126: beyond it the block range itself
// could overflow to inf. NaN, Inf and such giants are "non-quantizable": they
// never enter a block range, are counted by the statistics pass (so the
// caller sends the buffer uncompressed) and stay in the residual.
inline constexpr uint32_t kMaxQuantizableBits = 0x7e800000u;  // 2^126
SQZ_HD bool quantizable(float y) { return (floatBits(y) & 0x7fffffffu) <= kMaxQuantizableBits; }

// |x| as an unsigned key whose integer order is the magnitude order (NaN
// above Inf), used by top-K on both sides so ties and NaNs rank identically.
SQZ_HD uint32_t magnitudeKey(float y) { return floatBits(y) & 0x7fffffffu; }

// ---- blockwise b-bit quantization ------------------------------------------
// A block stores lo = min and delta = (max - min) / (2^b - 1); element codes
// are floor((y - lo) / delta + u), u ~ U[0,1) (unbiased) or u = 1/2 (nearest).
struct QuantBlock {
  float lo;
  float delta;
  float inv;  // 1 / delta, or 0 for a constant block
};

SQZ_HD QuantBlock makeQuantBlock(float lo, float hi, unsigned bits) {
  // lo > hi means the block held no quantizable value.
  if (!(lo <= hi)) return QuantBlock{0.0f, 0.0f, 0.0f};
  // -0 + 0 = +0: the CPU and GPU reductions may meet -0 and +0 in another
  // order, and the stored offset must not differ in its sign bit.
  lo = faddRn(lo, 0.0f);
  hi = faddRn(hi, 0.0f);
  float delta = fdivRn(fsubRn(hi, lo), static_cast<float>(maxCode(bits)));
  float inv = delta > 0.0f ? fdivRn(1.0f, delta) : 0.0f;
  return QuantBlock{lo, delta, inv};
}

SQZ_HD uint32_t quantizeElement(float y, const QuantBlock& b, float maxc, float u) {
  float t = fmulRn(fsubRn(y, b.lo), b.inv);
  float v = faddRn(t, u);
  v = v > 0.0f ? v : 0.0f;   // also maps NaN to 0
  v = v < maxc ? v : maxc;
  // v is in [0, 255]: the signed conversion is exact and vectorizes (SSE2
  // has no float -> uint32).
  return static_cast<uint32_t>(static_cast<int32_t>(v));
}

SQZ_HD float dequantizeElement(uint32_t code, float lo, float delta) {
  return faddRn(lo, fmulRn(static_cast<float>(code), delta));
}

// ---- scaled sign: one bit per element, one scale per block -------------------
// Decoded value: +s where y >= 0 (and -0), -s elsewhere (NaN too). The
// scale keeps the update's projection on y: s = sum y^2 / sum |y| gives
// <decoded, y> = s sum |y| = ||y||^2, so the error is orthogonal to y in
// every block and error feedback owes nothing along y (what slows training
// with momentum most: src/tuner/README.md section 6). Its squared error is
// exactly ||y||^2 (1 / delta - 1), delta = (sum |y|)^2 / (len ||y||^2), and
// every decoded magnitude is at most the block's largest |y| (s is the mean
// of |y| weighted by |y|), so each residual element after the encoding is
// at most max |y| too. Not capped: a cap at c sum |y| / len (contractive, as
// EF-SignSGD's least-squares scale c = 1 is) leaves c delta - 1 of ||y||^2
// owed along y, and training measured worse the more it owed
// (perf/results/training.md, issue 14's sign section). signBlockErrorSq()
// gives the error of a block exactly. Non-quantizable values (NaN, Inf,
// |y| > 2^126) stay out of the sums and in the residual, as for qB.
//
// The sums are taken in double in one fixed order on CPU and GPU, so that
// both store the same scale bits: 32 lanes, lane l adding elements l, l+32,
// l+64, ... of the block in turn, then a butterfly over the lanes (offsets
// 16, 8, 4, 2, 1: every lane adds lane l^o's partial sum), which is what a
// warp's __shfl_xor_sync reduction computes and signLaneSum() replays.
inline constexpr uint32_t kSignLanes = 32;

SQZ_HD double dmulRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

SQZ_HD double signMagnitude(float y) { return quantizable(y) ? static_cast<double>(y < 0.0f ? -y : y) : 0.0; }
// y^2 in double is exact (a 24-bit significand squared fits in 53 bits).
SQZ_HD double signSquare(float y) {
  return quantizable(y) ? dmulRn(static_cast<double>(y), static_cast<double>(y)) : 0.0;
}

// The CPU's replay of the warp butterfly over acc[kSignLanes] (overwritten).
inline double signLaneSum(double* acc) {
  for (uint32_t o = kSignLanes / 2; o > 0; o >>= 1) {
    double t[kSignLanes];
    for (uint32_t l = 0; l < kSignLanes; ++l) t[l] = daddRn(acc[l], acc[l ^ o]);
    for (uint32_t l = 0; l < kSignLanes; ++l) acc[l] = t[l];
  }
  return acc[0];
}

SQZ_HD float signBlockScale(double sumAbs, double sumSq, uint32_t len) {
  if (!(sumAbs > 0.0) || len == 0) return 0.0f;
  return static_cast<float>(ddivRn(sumSq, sumAbs));
}
SQZ_HD uint32_t signBit(float y) { return y >= 0.0f ? 1u : 0u; }
SQZ_HD float signValue(uint32_t bit, float scale) { return bit ? scale : -scale; }

// ||y - decoded||^2 of one block with scale s, in exact arithmetic, from its
// sums: ||y||^2 - 2 s sum |y| + len s^2 (tests bound by it).
SQZ_HD double signBlockErrorSq(double sumSq, double sumAbs, double len, double scale) {
  return sumSq - 2.0 * scale * sumAbs + len * scale * scale;
}

// What the statistics predict for one block with the codec's scale (in
// exact arithmetic): the kept part of ||y||^2, ||y||^2 - error =
// ||y||^2 (2 - 1 / delta) (negative where the error exceeds ||y||^2, delta <
// 1/2), and the error's component along y, ||y||^2 - s sum |y| = 0 (all of
// ||y||^2 where the block has no quantizable magnitude).
SQZ_HD void signBlockShares(double sumSq, double sumAbs, double len, double* kept, double* aligned) {
  if (!(sumAbs > 0.0) || !(sumSq > 0.0) || !(len > 0.0)) {
    *kept = 0.0;
    *aligned = sumSq > 0.0 ? sumSq : 0.0;
    return;
  }
  const double delta = sumAbs * sumAbs / (len * sumSq);
  *kept = sumSq * (2.0 - 1.0 / delta);
  *aligned = 0.0;
}

// ---- 8-bit values of top-K / random-K --------------------------------------
// Symmetric: q in [-127, 127], value = q * scale, scale = max|v| / 127.
SQZ_HD float int8Scale(float maxAbs) { return fdivRn(maxAbs, 127.0f); }

SQZ_HD int8_t int8Encode(float v, float inv) {
  float t = fmulRn(v, inv);
  float a = t >= 0.0f ? t : -t;
  a = faddRn(a, 0.5f);
  a = a > 0.0f ? a : 0.0f;  // NaN -> 0
  a = a < 127.0f ? a : 127.0f;
  int q = static_cast<int>(a);
  return static_cast<int8_t>(t >= 0.0f ? q : -q);
}

SQZ_HD float int8Decode(int8_t q, float scale) { return fmulRn(static_cast<float>(q), scale); }

// One stored value of top-K / random-K, as the decoder will see it.
SQZ_HD float roundTripValue(float v, ValueFormat f, float int8Inv, float int8ScaleValue) {
  switch (f) {
    case ValueFormat::Bf16: return bf16ToFloat(floatToBf16(v));
    case ValueFormat::Int8: return int8Decode(int8Encode(v, int8Inv), int8ScaleValue);
    default: return v;
  }
}

// ---- random-K ----------------------------------------------------------------
// Stratified random-K: stratum j = [floor(j n / K), floor((j+1) n / K)) holds
// exactly one selected index, drawn from a key every rank shares (rank 0).
// Indices are distinct, sorted, and each is computable on its own (no state,
// no sort on the GPU); every element is kept with probability 1/|stratum|,
// so scaling by |stratum| makes the estimate unbiased.
SQZ_HD uint64_t randkStratumBegin(uint64_t j, uint64_t n, uint64_t k) { return j * n / k; }

SQZ_HD uint64_t randkIndex(uint64_t j, uint64_t n, uint64_t k, const RngKey& key, uint64_t chunkOffset) {
  uint64_t begin = randkStratumBegin(j, n, k);
  uint64_t size = randkStratumBegin(j + 1, n, k) - begin;
  uint32_t r = philoxElement(key, chunkOffset + j);
  return begin + ((static_cast<uint64_t>(r) * size) >> 32);
}

SQZ_HD float randkScale(uint64_t j, uint64_t n, uint64_t k) {
  return static_cast<float>(randkStratumBegin(j + 1, n, k) - randkStratumBegin(j, n, k));
}

}  // namespace sqz
