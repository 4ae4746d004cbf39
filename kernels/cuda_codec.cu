// CUDA codecs: the per-element math of codec_math.h in three fused passes
// (statistics; encode + residual; decode + accumulate), so that the bytes
// match the CPU's exactly. Layout of work: a thread owns 8 consecutive
// elements (two 16-byte loads of fp32, one of fp16/bf16), a warp owns one
// 256-element span, which is one statistics block and a whole number of
// quantization bytes for every width.
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <iterator>
#include <vector>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "common/cuda_check.h"
#include "common/error.h"
#include "kernels/codec_math.h"
#include "kernels/cuda_codec.h"
#include "kernels/payload_checks.h"
#include "kernels/sign_rotation_math.h"

namespace sqz {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kPerThread = 8;
constexpr int kTileElems = kThreads * kPerThread;  // top-K compaction tile
constexpr int kRadixBits = 11;
constexpr int kRadixBins = 1 << kRadixBits;

struct NvtxRange {
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
};

cudaStream_t asStream(void* s) { return static_cast<cudaStream_t>(s); }

unsigned gridFor(size_t work, unsigned perBlock, unsigned cap = 65535u * 4) {
  size_t g = (work + perBlock - 1) / perBlock;
  return static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(g, cap)));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- loads of 8 consecutive elements -------------------------------------------

template <class T>
struct Vec8;
template <>
struct Vec8<float> {
  __device__ static void load(const float* p, bool vec, float* out) {
    if (vec) {
      float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
      out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
    } else {
      for (int k = 0; k < 8; ++k) out[k] = p[k];
    }
  }
};
template <class H>
__device__ void load8Half(const H* p, bool vec, float* out) {
  if (vec) {
    uint4 a = *reinterpret_cast<const uint4*>(p);
    uint32_t w[4] = {a.x, a.y, a.z, a.w};
    for (int k = 0; k < 4; ++k) {
      out[2 * k] = toFloat(H{static_cast<uint16_t>(w[k] & 0xffffu)});
      out[2 * k + 1] = toFloat(H{static_cast<uint16_t>(w[k] >> 16)});
    }
  } else {
    for (int k = 0; k < 8; ++k) out[k] = toFloat(p[k]);
  }
}
template <>
struct Vec8<Bf16Bits> {
  __device__ static void load(const Bf16Bits* p, bool vec, float* out) { load8Half(p, vec, out); }
};
template <>
struct Vec8<Fp16Bits> {
  __device__ static void load(const Fp16Bits* p, bool vec, float* out) { load8Half(p, vec, out); }
};

__device__ void loadF8(const float* p, bool vec, float* out) { Vec8<float>::load(p, vec, out); }

__device__ void storeF8(float* p, bool vec, const float* v) {
  if (vec) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    for (int k = 0; k < 8; ++k) p[k] = v[k];
  }
}

// y = g + e for the (up to 8) elements at i; m = how many are in range.
template <class T>
__device__ int loadY8(const T* g, const float* e, size_t i, size_t n, bool vec, float* y) {
  const int m = static_cast<int>(n - i < 8 ? n - i : 8);
  if (m == 8) {
    Vec8<T>::load(g + i, vec, y);
    if (e) {
      float r[8];
      loadF8(e + i, vec, r);
      for (int k = 0; k < 8; ++k) y[k] = faddRn(y[k], r[k]);
    }
  } else {
    for (int k = 0; k < 8; ++k) y[k] = k < m ? (e ? faddRn(toFloat(g[i + k]), e[i + k]) : toFloat(g[i + k])) : 0.0f;
  }
  return m;
}

__device__ void storeResidual8(float* e, size_t i, int m, bool vec, const float* v) {
  if (m == 8) {
    storeF8(e + i, vec, v);
  } else {
    for (int k = 0; k < m; ++k) e[i + k] = v[k];
  }
}

// Uniforms of global elements gi .. gi+7 (the CPU's grouping by eight).
__device__ void random8(const RngKey& key, uint64_t gi, float* u) {
  const uint64_t g0 = gi >> 3;
  const unsigned sh = static_cast<unsigned>(gi & 7);
  const Philox4 a = philoxGroup(key, g0);
  if (sh == 0) {
    for (unsigned k = 0; k < 8; ++k) u[k] = uniformFrom16(halfWord(a, k));
    return;
  }
  const Philox4 b = philoxGroup(key, g0 + 1);
  for (unsigned k = 0; k < 8; ++k) {
    const unsigned h = sh + k;
    u[k] = uniformFrom16(h < 8 ? halfWord(a, h) : halfWord(b, h - 8));
  }
}

__device__ float warpMin(float v) {
  for (int o = 16; o; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ float warpMax(float v) {
  for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// The butterfly of codec_math.h's signLaneSum: lane l adds lane l^o's value,
// offsets 16, 8, 4, 2, 1 (every lane ends with the same bits).
__device__ double warpSum(double v) {
  for (int o = 16; o; o >>= 1) v = daddRn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// One element of y = g + e (0 past n).
template <class T>
__device__ float loadY1(const T* g, const float* e, size_t i, size_t n) {
  if (i >= n) return 0.0f;
  return e ? faddRn(toFloat(g[i]), e[i]) : toFloat(g[i]);
}

// ---- statistics: residual add + histogram + block ranges, one read ----------

template <class T>
__global__ void __launch_bounds__(kThreads) statsKernel(const T* g, const float* e, size_t n, bool vec, GradStats* out) {
  __shared__ unsigned binCount[GradStats::kBins];
  __shared__ double binSq[GradStats::kBins];
  for (int b = threadIdx.x; b < GradStats::kBins; b += kThreads) binCount[b] = 0, binSq[b] = 0.0;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const size_t spans = (n + kStatsBlockSize - 1) / kStatsBlockSize;
  double sumSq = 0.0, bad = 0.0, var[GradStats::kQuantWidths] = {0, 0, 0, 0}, blocks = 0.0, signKept = 0.0,
         signAligned = 0.0, rotCommon = 0.0, rotError = 0.0;
  for (size_t s = blockIdx.x * size_t{kWarps} + threadIdx.x / 32; s < spans; s += size_t{gridDim.x} * kWarps) {
    const size_t i = s * kStatsBlockSize + lane * kPerThread;
    float y[8];
    int m = i < n ? loadY8(g, e, i, n, vec, y) : 0;
    float lo = INFINITY, hi = -INFINITY;
    double sumAbs = 0.0, blockSq = 0.0;
    for (int k = 0; k < m; ++k) {
      const uint32_t key = magnitudeKey(y[k]);
      if (key > kMaxQuantizableBits) {
        bad += 1.0;
        continue;
      }
      sumAbs += fabs(static_cast<double>(y[k]));
      lo = fminf(lo, y[k]);
      hi = fmaxf(hi, y[k]);
      const double sq = static_cast<double>(y[k]) * y[k];
      sumSq += sq;
      blockSq += sq;
      const int b = statsBin(key);
      atomicAdd(&binCount[b], 1u);
      atomicAdd(&binSq[b], sq);
    }
    lo = warpMin(lo);
    hi = warpMax(hi);
    sumAbs = warpSum(sumAbs);
    blockSq = warpSum(blockSq);
    if (lane == 0) {
      const size_t len = min(static_cast<size_t>(kStatsBlockSize), n - s * kStatsBlockSize);
      double kept, aligned;
      signBlockShares(blockSq, sumAbs, static_cast<double>(len), &kept, &aligned);
      signKept += kept;
      signAligned += aligned;
      if (lo <= hi) {
        const double maxSq = fmax(static_cast<double>(lo) * lo, static_cast<double>(hi) * hi);
        double common, error;
        signRotationBlockErrors(blockSq, maxSq, &common, &error);
        rotCommon += common;
        rotError += error;
        const double range = static_cast<double>(hi) - lo;
        for (int w = 0; w < GradStats::kQuantWidths; ++w) {
          const double d = range / maxCode(quantWidthBits(w));
          var[w] += static_cast<double>(len) * d * d / 4.0;
        }
      }
      blocks += 1.0;
    }
  }
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  constexpr int kFields = 7 + GradStats::kQuantWidths;
  double vals[kFields] = {sumSq, bad, blocks, signKept, signAligned, rotCommon, rotError, var[0], var[1], var[2], var[3]};
  double* dst[kFields] = {&out->sumSq,         &out->nonFinite,    &out->quantBlocks, &out->signKept,
                          &out->signAligned,   &out->signRotCommon, &out->signRotError, &out->quantVar[0],
                          &out->quantVar[1],   &out->quantVar[2],  &out->quantVar[3]};
  for (int f = 0; f < kFields; ++f) {
    double t = Reduce(tmp).Sum(vals[f]);
    if (threadIdx.x == 0 && t != 0.0) atomicAdd(dst[f], t);
    __syncthreads();
  }
  for (int b = threadIdx.x; b < GradStats::kBins; b += kThreads) {
    if (binCount[b]) {
      atomicAdd(&out->binCount[b], static_cast<double>(binCount[b]));
      atomicAdd(&out->binSumSq[b], binSq[b]);
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) atomicAdd(&out->elements, static_cast<double>(n));
}

// ---- header, padding ------------------------------------------------------------

// Bytes of the payload that no codec kernel writes (alignment gaps): zeroed
// so that payloads compare byte for byte.
struct PadList {
  uint64_t begin[4];
  uint64_t end[4];
  int count;
};

// The header, the pads, and sign:rot's rotation key (at keyAt, 0 for none;
// written here so that an empty chunk carries it too, as on the CPU).
__global__ void headerKernel(WireHeader h, uint8_t* payload, PadList pads, uint64_t key, size_t keyAt) {
  const uint8_t* src = reinterpret_cast<const uint8_t*>(&h);
  for (int b = threadIdx.x; b < static_cast<int>(sizeof h); b += blockDim.x) payload[b] = src[b];
  if (keyAt && threadIdx.x == 0) *reinterpret_cast<uint64_t*>(payload + keyAt) = key;
  for (int r = 0; r < pads.count; ++r)
    for (uint64_t b = pads.begin[r] + threadIdx.x; b < pads.end[r]; b += blockDim.x) payload[b] = 0;
}

void addPad(PadList& p, size_t begin, size_t end) {
  if (end > begin) {
    p.begin[p.count] = begin;
    p.end[p.count] = end;
    ++p.count;
  }
}

// ---- casts -------------------------------------------------------------------------

template <class T, CodecKind K>
__global__ void __launch_bounds__(kThreads) castEncodeKernel(const T* g, float* e, size_t n, bool vec, uint8_t* body) {
  for (size_t i = (blockIdx.x * size_t{kThreads} + threadIdx.x) * kPerThread; i < n;
       i += size_t{gridDim.x} * kThreads * kPerThread) {
    float y[8], r[8];
    const int m = loadY8(g, e, i, n, vec, y);
    if (K == CodecKind::None) {
      storeResidual8(reinterpret_cast<float*>(body), i, m, vec, y);
      for (int k = 0; k < 8; ++k) r[k] = 0.0f;
    } else {
      uint16_t h[8];
      for (int k = 0; k < 8; ++k) {
        h[k] = K == CodecKind::Bf16 ? floatToBf16(y[k]) : floatToFp16(y[k]);
        r[k] = fsubRn(y[k], K == CodecKind::Bf16 ? bf16ToFloat(h[k]) : fp16ToFloat(h[k]));
      }
      uint16_t* out = reinterpret_cast<uint16_t*>(body) + i;
      if (m == 8 && vec) {
        *reinterpret_cast<uint4*>(out) = make_uint4(h[0] | (uint32_t{h[1]} << 16), h[2] | (uint32_t{h[3]} << 16),
                                                    h[4] | (uint32_t{h[5]} << 16), h[6] | (uint32_t{h[7]} << 16));
      } else {
        for (int k = 0; k < m; ++k) out[k] = h[k];
      }
    }
    if (e) storeResidual8(e, i, m, vec, r);
  }
}

// ---- blockwise quantization -----------------------------------------------------------

template <class T, unsigned Bits>
__global__ void __launch_bounds__(kThreads) quantEncodeKernel(const T* g, float* e, size_t n, bool vec, uint32_t B,
                                                              bool stochastic, RngKey key, uint64_t chunkOffset,
                                                              float* params, uint8_t* codes) {
  const int lane = threadIdx.x & 31;
  const size_t blocks = (n + B - 1) / B;
  const float maxc = static_cast<float>(maxCode(Bits));
  for (size_t blk = blockIdx.x * size_t{kWarps} + threadIdx.x / 32; blk < blocks; blk += size_t{gridDim.x} * kWarps) {
    const size_t s = blk * B, len = min(size_t{B}, n - s);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t off = lane * kPerThread; off < len; off += 32 * kPerThread) {
      float y[8];
      const int m = loadY8(g, e, s + off, n, vec, y);
      for (int k = 0; k < m; ++k) {
        if (quantizable(y[k])) lo = fminf(lo, y[k]), hi = fmaxf(hi, y[k]);
      }
    }
    lo = warpMin(lo);
    hi = warpMax(hi);
    const QuantBlock qb = makeQuantBlock(lo, hi, Bits);
    if (lane == 0) reinterpret_cast<float2*>(params)[blk] = make_float2(qb.lo, qb.delta);
    for (size_t off = lane * kPerThread; off < len; off += 32 * kPerThread) {
      const size_t i = s + off;
      float y[8], u[8], r[8];
      const int m = loadY8(g, e, i, n, vec, y);
      if (stochastic) {
        random8(key, chunkOffset + i, u);
      } else {
        for (int k = 0; k < 8; ++k) u[k] = 0.5f;
      }
      uint64_t packed = 0;
      for (int k = 0; k < 8; ++k) {
        const uint32_t c = k < m ? quantizeElement(y[k], qb, maxc, u[k]) : 0u;
        packed |= static_cast<uint64_t>(c) << (k * Bits);
        r[k] = fsubRn(y[k], dequantizeElement(c, qb.lo, qb.delta));
      }
      uint8_t* out = codes + i * Bits / 8;  // i is a multiple of 8: byte aligned, Bits-byte aligned
      if (m == 8) {
        if (Bits == 8) *reinterpret_cast<uint2*>(out) = make_uint2(static_cast<uint32_t>(packed), static_cast<uint32_t>(packed >> 32));
        if (Bits == 4) *reinterpret_cast<uint32_t*>(out) = static_cast<uint32_t>(packed);
        if (Bits == 2) *reinterpret_cast<uint16_t*>(out) = static_cast<uint16_t>(packed);
        if (Bits == 1) *out = static_cast<uint8_t>(packed);
      } else {
        for (unsigned b = 0; b < (m * Bits + 7) / 8; ++b) out[b] = static_cast<uint8_t>(packed >> (8 * b));
      }
      if (e) storeResidual8(e, i, m, vec, r);
    }
  }
}

// ---- decode: header check, then decode + accumulate ---------------------------------

enum DecodeError : int { kDecodeOk = 0, kBadHeader = 1, kBadBlockScale = 2, kBadIndex = 3, kBadValueScale = 4 };

__device__ void raise(int* err, int code) { atomicCAS(err, 0, code); }

// Thread 0 of each block checks the header against the receiver's
// expectation (reading it only when `bytes` holds it).
__device__ bool headerOkForBlock(const uint8_t* payload, const DecodeExpect& x, size_t bytes, int* err) {
  __shared__ bool ok;
  if (threadIdx.x == 0) {
    WireHeader h{};
    if (bytes >= sizeof h) memcpy(&h, payload, sizeof h);
    ok = checkWireHeader(h, x, bytes) == nullptr;
    if (!ok) raise(err, kBadHeader);
  }
  __syncthreads();
  return ok;
}

// Every kernel that writes the output starts here: the header holds and no
// check (validateKernel's, which ran before on the stream, or an earlier
// decode's) has raised an error. So a payload is checked whole before its
// first element is written, as on the CPU (kernels/payload_checks.h).
__device__ bool mayWriteForBlock(const uint8_t* payload, const DecodeExpect& x, size_t bytes, int* err) {
  __shared__ bool clean;
  if (threadIdx.x == 0) clean = *reinterpret_cast<volatile int*>(err) == kDecodeOk;
  __syncthreads();
  return clean && headerOkForBlock(payload, x, bytes, err);
}

// The checks of a payload's sections (kernels/payload_checks.h, the CPU
// decoder's own): every block's scale, the value scale, every top-K index
// (in range and strictly increasing, so no duplicates). Writes nothing but
// the error.
__global__ void validateKernel(const uint8_t* payload, DecodeExpect x, size_t bytes, PayloadLayout l, int* err) {
  if (!headerOkForBlock(payload, x, bytes, err)) return;
  const size_t first = blockIdx.x * size_t{blockDim.x} + threadIdx.x, stride = size_t{gridDim.x} * blockDim.x;
  if (x.params.kind == CodecKind::Quant) {
    const float2* params = reinterpret_cast<const float2*>(payload + l.params);
    for (size_t b = first; b < l.blocks; b += stride)
      if (!blockParamsOk(params[b].x, params[b].y)) raise(err, kBadBlockScale);
    return;
  }
  if (x.params.kind == CodecKind::Sign) {
    const float* scales = reinterpret_cast<const float*>(payload + l.params);
    for (size_t b = first; b < l.blocks; b += stride)
      if (!signScaleOk(scales[b])) raise(err, kBadBlockScale);
    return;
  }
  if (x.params.values == ValueFormat::Int8 && first == 0 &&
      !valueScaleOk(*reinterpret_cast<const float*>(payload + l.scale)))
    raise(err, kBadValueScale);
  if (x.params.kind == CodecKind::TopK) {
    const uint32_t* idx = reinterpret_cast<const uint32_t*>(payload + l.params);
    for (size_t j = first; j < l.selected; j += stride)
      if (!sparseIndexOk(idx, j, x.count)) raise(err, kBadIndex);
  }
}

__device__ void emit8(float* out, size_t i, int m, bool vec, DecodeMode mode, const float* d) {
  float v[8];
  if (mode == DecodeMode::Accumulate) {
    if (m == 8) {
      loadF8(out + i, vec, v);
    } else {
      for (int k = 0; k < m; ++k) v[k] = out[i + k];
    }
    for (int k = 0; k < 8; ++k) v[k] = faddRn(v[k], d[k]);
  } else {
    for (int k = 0; k < 8; ++k) v[k] = d[k];
  }
  storeResidual8(out, i, m, vec, v);
}

template <CodecKind K>
__global__ void __launch_bounds__(kThreads) castDecodeKernel(const uint8_t* payload, DecodeExpect x, size_t bytes,
                                                             size_t bodyOff, float* out, bool vec, DecodeMode mode,
                                                             int* err) {
  if (!mayWriteForBlock(payload, x, bytes, err)) return;
  const size_t n = x.count;
  const uint8_t* body = payload + bodyOff;
  for (size_t i = (blockIdx.x * size_t{kThreads} + threadIdx.x) * kPerThread; i < n;
       i += size_t{gridDim.x} * kThreads * kPerThread) {
    const int m = static_cast<int>(n - i < 8 ? n - i : 8);
    float d[8];
    if (K == CodecKind::None) {
      const float* v = reinterpret_cast<const float*>(body) + i;
      if (m == 8) {
        loadF8(v, vec, d);
      } else {
        for (int k = 0; k < 8; ++k) d[k] = k < m ? v[k] : 0.0f;
      }
    } else {
      const uint16_t* v = reinterpret_cast<const uint16_t*>(body) + i;
      for (int k = 0; k < 8; ++k) {
        const uint16_t h = k < m ? v[k] : 0;
        d[k] = K == CodecKind::Bf16 ? bf16ToFloat(h) : fp16ToFloat(h);
      }
    }
    emit8(out, i, m, vec, mode, d);
  }
}

template <unsigned Bits>
__global__ void __launch_bounds__(kThreads) quantDecodeKernel(const uint8_t* payload, DecodeExpect x, size_t bytes,
                                                              PayloadLayout l, float* out, bool vec, DecodeMode mode,
                                                              int* err) {
  if (!mayWriteForBlock(payload, x, bytes, err)) return;
  const int lane = threadIdx.x & 31;
  const size_t n = x.count, B = x.params.blockSize;
  const float2* params = reinterpret_cast<const float2*>(payload + l.params);
  const uint8_t* codes = payload + l.body;
  for (size_t blk = blockIdx.x * size_t{kWarps} + threadIdx.x / 32; blk < l.blocks; blk += size_t{gridDim.x} * kWarps) {
    const float2 p = params[blk];
    if (!blockParamsOk(p.x, p.y)) continue;  // validateKernel raised it; never reached
    const size_t s = blk * B, len = min(B, n - s);
    for (size_t off = lane * kPerThread; off < len; off += 32 * kPerThread) {
      const size_t i = s + off;
      const int m = static_cast<int>(n - i < 8 ? n - i : 8);
      const uint8_t* in = codes + i * Bits / 8;
      uint64_t packed = 0;
      if (m == 8) {
        if (Bits == 8) {
          uint2 w = *reinterpret_cast<const uint2*>(in);
          packed = w.x | (static_cast<uint64_t>(w.y) << 32);
        }
        if (Bits == 4) packed = *reinterpret_cast<const uint32_t*>(in);
        if (Bits == 2) packed = *reinterpret_cast<const uint16_t*>(in);
        if (Bits == 1) packed = *in;
      } else {
        for (unsigned b = 0; b < (m * Bits + 7) / 8; ++b) packed |= static_cast<uint64_t>(in[b]) << (8 * b);
      }
      float d[8];
      for (int k = 0; k < 8; ++k)
        d[k] = dequantizeElement(static_cast<uint32_t>(packed >> (k * Bits)) & maxCode(Bits), p.x, p.y);
      emit8(out, i, m, vec, mode, d);
    }
  }
}

// ---- scaled sign ------------------------------------------------------------------------

// A warp per block: lane l reads elements l, l+32, ... (coalesced) and sums
// their magnitudes in double (codec_math.h's order), the butterfly gives the
// scale; then each 32-element word's bits come from one ballot.
template <class T>
__global__ void __launch_bounds__(kThreads) signEncodeKernel(const T* g, float* e, size_t n, uint32_t B, float* scales,
                                                             uint8_t* bits) {
  const int lane = threadIdx.x & 31;
  const size_t blocks = (n + B - 1) / B;
  for (size_t blk = blockIdx.x * size_t{kWarps} + threadIdx.x / 32; blk < blocks; blk += size_t{gridDim.x} * kWarps) {
    const size_t s = blk * B, len = min(size_t{B}, n - s);
    double acc = 0.0, sq = 0.0;
    for (size_t j = 0; j < len; j += kSignLanes) {
      const float y = loadY1(g, e, s + j + lane, s + len);
      acc = daddRn(acc, signMagnitude(y));
      sq = daddRn(sq, signSquare(y));
    }
    const float scale = signBlockScale(warpSum(acc), warpSum(sq), static_cast<uint32_t>(len));
    if (lane == 0) scales[blk] = scale;
    for (size_t j = 0; j < len; j += kSignLanes) {
      const size_t i = s + j + lane;
      const bool in = i < s + len;
      const float y = loadY1(g, e, i, s + len);
      const uint32_t bit = in ? signBit(y) : 0u;
      const uint32_t word = __ballot_sync(0xffffffffu, bit != 0);
      if (in && e) e[i] = fsubRn(y, signValue(bit, scale));
      if (lane == 0) {
        uint8_t* out = bits + (s + j) / 8;  // 4-byte aligned: B and j are multiples of 32
        const size_t m = min(size_t{kSignLanes}, len - j);
        if (m == kSignLanes) {
          *reinterpret_cast<uint32_t*>(out) = word;
        } else {
          for (size_t b = 0; b < (m + 7) / 8; ++b) out[b] = static_cast<uint8_t>(word >> (8 * b));
        }
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads) signDecodeKernel(const uint8_t* payload, DecodeExpect x, size_t bytes,
                                                             PayloadLayout l, float* out, DecodeMode mode, int* err) {
  if (!mayWriteForBlock(payload, x, bytes, err)) return;
  const int lane = threadIdx.x & 31;
  const size_t n = x.count, B = x.params.blockSize;
  const float* scales = reinterpret_cast<const float*>(payload + l.params);
  const uint8_t* bits = payload + l.body;
  for (size_t blk = blockIdx.x * size_t{kWarps} + threadIdx.x / 32; blk < l.blocks; blk += size_t{gridDim.x} * kWarps) {
    const float scale = scales[blk];
    if (!signScaleOk(scale)) continue;  // validateKernel raised it; never reached
    const size_t s = blk * B, len = min(B, n - s);
    for (size_t j = lane; j < len; j += kSignLanes) {
      const size_t i = s + j;
      const float d = signValue((bits[i >> 3] >> (i & 7)) & 1u, scale);
      out[i] = mode == DecodeMode::Accumulate ? faddRn(out[i], d) : d;
    }
  }
}

// ---- rotated sign (sign:rot) ---------------------------------------------------------------
// A thread block per sign block, which it holds whole while it rotates it:
// in shared memory up to kRotationSharedElements, beyond that in a global
// scratch of the buffer's size (the block at its own offset). The
// transform runs the CPU's stages in the CPU's order with the shared
// butterfly (sign_rotation_math.h), a __syncthreads between stages, so the
// rotated block, and with it the scale, the bits and the residual, have the
// CPU's bits.
constexpr uint32_t kRotationSharedElements = 8192;  // 32 KiB, under the default dynamic limit

bool rotationInShared(uint32_t blockSize) { return blockSize <= kRotationSharedElements; }
unsigned rotationThreads(uint32_t blockSize) { return blockSize < kThreads ? blockSize : kThreads; }

// Normalized transform of each power-of-two piece of z[0 .. n), in place;
// every thread of the block calls it, and it ends synchronized.
__device__ void rotationPieces(float* z, size_t n) {
  for (size_t at = 0; at < n;) {
    const size_t m = signRotationPiece(n - at);
    float* v = z + at;
    for (size_t h = 1; h < m; h *= 2) {
      for (size_t t = threadIdx.x; t < m / 2; t += blockDim.x) {
        const size_t i = (t & ~(h - 1)) * 2 + (t & (h - 1));
        hadamardButterfly(&v[i], &v[i + h]);
      }
      __syncthreads();
    }
    const float c = hadamardNorm(m);
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) v[j] = fmulRn(v[j], c);
    at += m;
  }
  __syncthreads();
}

// D of the block at z[0 .. n) (signs of block key k), by every thread.
__device__ void rotationFlips(float* z, size_t n, uint64_t k) {
  for (size_t i = threadIdx.x; i < n; i += blockDim.x) z[i] = signFlip(z[i], signFlipWord(k, i / 64), i % 64);
}

template <class T>
__global__ void __launch_bounds__(kThreads) rotatedSignEncodeKernel(const T* g, float* e, size_t n, uint32_t B,
                                                                    uint64_t key, uint64_t chunkOffset, float* scratch,
                                                                    float* scales, uint8_t* bits) {
  extern __shared__ float rotationBlock[];
  __shared__ float blockScale;
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const size_t blocks = (n + B - 1) / B;
  for (size_t blk = blockIdx.x; blk < blocks; blk += gridDim.x) {
    const size_t s = blk * size_t{B}, len = min(size_t{B}, n - s);
    float* z = scratch ? scratch + s : rotationBlock;
    const uint64_t k = signRotationBlockKey(key, chunkOffset + s);
    for (size_t i = threadIdx.x; i < len; i += blockDim.x) z[i] = loadY1(g, e, s + i, n);
    rotationFlips(z, len, k);
    __syncthreads();
    rotationPieces(z, len);
    if (warp == 0) {
      double acc = 0.0, sq = 0.0;
      for (size_t j = lane; j < len; j += kSignLanes) {
        acc = daddRn(acc, signMagnitude(z[j]));
        sq = daddRn(sq, signSquare(z[j]));
      }
      const float scale = signBlockScale(warpSum(acc), warpSum(sq), static_cast<uint32_t>(len));
      if (lane == 0) scales[blk] = blockScale = scale;
    }
    for (size_t w = warp; w * kSignLanes < len; w += warps) {
      const size_t j = w * kSignLanes + lane;
      const uint32_t word = __ballot_sync(0xffffffffu, j < len && signBit(z[j]) != 0u);
      if (lane == 0) {
        uint8_t* out = bits + (s + w * kSignLanes) / 8;  // 4-byte aligned: B is a multiple of 32
        const size_t m = min(size_t{kSignLanes}, len - w * kSignLanes);
        if (m == kSignLanes) {
          *reinterpret_cast<uint32_t*>(out) = word;
        } else {
          for (size_t b = 0; b < (m + 7) / 8; ++b) out[b] = static_cast<uint8_t>(word >> (8 * b));
        }
      }
    }
    __syncthreads();
    if (e) {
      // The residual against the decoding rotated back: y - R^T decode(R y).
      const float scale = blockScale;
      for (size_t i = threadIdx.x; i < len; i += blockDim.x) z[i] = signValue(signBit(z[i]), scale);
      __syncthreads();
      rotationPieces(z, len);
      rotationFlips(z, len, k);
      for (size_t i = threadIdx.x; i < len; i += blockDim.x) e[s + i] = fsubRn(loadY1(g, e, s + i, n), z[i]);
    }
    __syncthreads();  // z and blockScale are the next block's
  }
}

__global__ void __launch_bounds__(kThreads) rotatedSignDecodeKernel(const uint8_t* payload, DecodeExpect x,
                                                                    size_t bytes, PayloadLayout l, float* scratch,
                                                                    float* out, DecodeMode mode, int* err) {
  extern __shared__ float rotationBlock[];
  if (!mayWriteForBlock(payload, x, bytes, err)) return;
  const size_t n = x.count, B = x.params.blockSize;
  const float* scales = reinterpret_cast<const float*>(payload + l.params);
  const uint8_t* bits = payload + l.body;
  const uint64_t key = *reinterpret_cast<const uint64_t*>(payload + l.rotationKey);  // every key is valid
  for (size_t blk = blockIdx.x; blk < l.blocks; blk += gridDim.x) {
    const float scale = scales[blk];
    if (!signScaleOk(scale)) continue;  // validateKernel raised it; never reached
    const size_t s = blk * B, len = min(B, n - s);
    float* z = scratch ? scratch + s : rotationBlock;
    for (size_t i = threadIdx.x; i < len; i += blockDim.x)
      z[i] = signValue((bits[(s + i) >> 3] >> ((s + i) & 7)) & 1u, scale);
    __syncthreads();
    rotationPieces(z, len);
    rotationFlips(z, len, signRotationBlockKey(key, x.chunkOffset + s));
    for (size_t i = threadIdx.x; i < len; i += blockDim.x)
      out[s + i] = mode == DecodeMode::Accumulate ? faddRn(out[s + i], z[i]) : z[i];
    __syncthreads();
  }
}

// The count sketch of g (GradStats::sketch): buckets in shared memory,
// then added into the rank's statistics.
template <class T>
__global__ void __launch_bounds__(kThreads) sketchKernel(const T* g, size_t n, uint64_t seed, GradStats* out) {
  __shared__ double buckets[GradStats::kSketch];
  for (int k = threadIdx.x; k < GradStats::kSketch; k += kThreads) buckets[k] = 0.0;
  __syncthreads();
  for (size_t j = blockIdx.x * size_t{kThreads} + threadIdx.x; j < n; j += size_t{gridDim.x} * kThreads) {
    const float v = toFloat(g[j]);
    if (quantizable(v)) atomicAdd(&buckets[sketchBucket(j, seed)], sketchSign(j, seed) * static_cast<double>(v));
  }
  __syncthreads();
  for (int k = threadIdx.x; k < GradStats::kSketch; k += kThreads)
    if (buckets[k] != 0.0) atomicAdd(&out->sketch[k], buckets[k]);
}

// After sketchKernel (the rank's own statistics): sketchSq and sketchRanks.
__global__ void sketchNormKernel(GradStats* out) {
  using Reduce = cub::BlockReduce<double, GradStats::kSketch>;
  __shared__ typename Reduce::TempStorage tmp;
  const double v = out->sketch[threadIdx.x];
  const double total = Reduce(tmp).Sum(v * v);
  if (threadIdx.x == 0) {
    out->sketchSq += total;
    out->sketchRanks += 1.0;
  }
}

__global__ void zeroKernel(const uint8_t* payload, DecodeExpect x, size_t bytes, float* out, int* err) {
  if (!mayWriteForBlock(payload, x, bytes, err)) return;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < x.count; i += size_t{gridDim.x} * blockDim.x)
    out[i] = 0.0f;
}

__device__ float readValue(const uint8_t* payload, const PayloadLayout& l, ValueFormat f, size_t j, float scale) {
  if (f == ValueFormat::Fp32) return reinterpret_cast<const float*>(payload + l.body)[j];
  if (f == ValueFormat::Bf16) return bf16ToFloat(reinterpret_cast<const uint16_t*>(payload + l.body)[j]);
  return int8Decode(reinterpret_cast<const int8_t*>(payload + l.body)[j], scale);
}

// Sparse decode (top-K with indices on the wire, random-K from the key),
// after validateKernel checked the scale and every index.
__global__ void sparseDecodeKernel(const uint8_t* payload, DecodeExpect x, size_t bytes, PayloadLayout l, float* out,
                                   int* err) {
  if (!mayWriteForBlock(payload, x, bytes, err)) return;
  const ValueFormat f = x.params.values;
  const float scale = f == ValueFormat::Int8 ? *reinterpret_cast<const float*>(payload + l.scale) : 0.0f;
  const bool topk = x.params.kind == CodecKind::TopK;
  const uint32_t* idx = reinterpret_cast<const uint32_t*>(payload + l.params);
  const RngKey key = makeRngKey(x.seed, x.step, 0);
  for (size_t j = blockIdx.x * size_t{blockDim.x} + threadIdx.x; j < l.selected; j += size_t{gridDim.x} * blockDim.x) {
    const uint64_t i = topk ? idx[j] : randkIndex(j, x.count, l.selected, key, x.chunkOffset);
    if (i < x.count) out[i] = faddRn(out[i], readValue(payload, l, f, j, scale));
  }
}

// ---- top-K: exact radix select of the K-th magnitude, then capped compaction ----------

struct SelectState {
  uint32_t prefix;  // high bits of the K-th largest key found so far
  uint32_t mask;
  uint32_t need;    // how many keys equal to the final prefix are still to take
  uint32_t pad;
  uint32_t hist[kRadixBins];
};

template <class T>
__device__ void loadKeys8(const T* g, const float* e, size_t i, size_t n, bool vec, float* y, uint32_t* key, int* m) {
  *m = loadY8(g, e, i, n, vec, y);
  for (int k = 0; k < 8; ++k) key[k] = magnitudeKey(y[k]);
}

__global__ void selectInitKernel(SelectState* st, uint32_t k) {
  if (threadIdx.x == 0) st->prefix = 0, st->mask = 0, st->need = k;
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) st->hist[b] = 0;
}

template <class T>
__global__ void __launch_bounds__(kThreads) radixHistKernel(const T* g, const float* e, size_t n, bool vec, int shift,
                                                            SelectState* st) {
  __shared__ unsigned h[kRadixBins];
  for (int b = threadIdx.x; b < kRadixBins; b += kThreads) h[b] = 0;
  __syncthreads();
  const uint32_t prefix = st->prefix, mask = st->mask;
  for (size_t i = (blockIdx.x * size_t{kThreads} + threadIdx.x) * kPerThread; i < n;
       i += size_t{gridDim.x} * kThreads * kPerThread) {
    float y[8];
    uint32_t key[8];
    int m;
    loadKeys8(g, e, i, n, vec, y, key, &m);
    for (int k = 0; k < m; ++k)
      if ((key[k] & mask) == prefix) atomicAdd(&h[(key[k] >> shift) & (kRadixBins - 1)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kRadixBins; b += kThreads)
    if (h[b]) atomicAdd(&st->hist[b], h[b]);
}

// Finds the digit holding the need-th largest key: a scan over the bins from
// the top (CUB BlockScan, 2 bins per thread), then narrows the prefix.
__global__ void __launch_bounds__(1024) radixPickKernel(SelectState* st, int shift) {
  using Scan = cub::BlockScan<uint32_t, 1024>;
  __shared__ typename Scan::TempStorage tmp;
  const int t = threadIdx.x;
  // Thread t holds bins 2047-2t and 2046-2t: descending digits in thread order.
  uint32_t c[2] = {st->hist[kRadixBins - 1 - 2 * t], st->hist[kRadixBins - 2 - 2 * t]};
  uint32_t before[2];
  Scan(tmp).ExclusiveSum(c, before);
  const uint32_t need = st->need;
  __syncthreads();
  for (int q = 0; q < 2; ++q) {
    if (before[q] < need && need <= before[q] + c[q]) {
      const uint32_t digit = kRadixBins - 1 - (2 * t + q);
      st->prefix |= digit << shift;
      st->mask |= static_cast<uint32_t>(kRadixBins - 1) << shift;
      st->need = need - before[q];
    }
  }
  __syncthreads();
  for (int b = t; b < kRadixBins; b += 1024) st->hist[b] = 0;
}

struct TileCounts {
  uint32_t* gt;
  uint32_t* eq;
  uint32_t* eqBefore;
  uint32_t* outBase;
};

template <class T>
__global__ void __launch_bounds__(kThreads) tileCountKernel(const T* g, const float* e, size_t n, bool vec,
                                                            const SelectState* st, TileCounts tc) {
  using Reduce = cub::BlockReduce<uint32_t, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const uint32_t t = st->prefix;
  const size_t i = blockIdx.x * size_t{kTileElems} + threadIdx.x * kPerThread;
  uint32_t gt = 0, eq = 0;
  if (i < n) {
    float y[8];
    uint32_t key[8];
    int m;
    loadKeys8(g, e, i, n, vec, y, key, &m);
    for (int k = 0; k < m; ++k) gt += key[k] > t, eq += key[k] == t;
  }
  const uint32_t sgt = Reduce(tmp).Sum(gt);
  __syncthreads();
  const uint32_t seq = Reduce(tmp).Sum(eq);
  if (threadIdx.x == 0) tc.gt[blockIdx.x] = sgt, tc.eq[blockIdx.x] = seq;
}

// Per tile: ties seen before it, and where its output starts.
__global__ void __launch_bounds__(1024) tileScanKernel(const SelectState* st, TileCounts tc, uint32_t tiles) {
  using Scan = cub::BlockScan<uint32_t, 1024>;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ uint32_t carryEq, carryOut;
  if (threadIdx.x == 0) carryEq = 0, carryOut = 0;
  __syncthreads();
  const uint32_t need = st->need;
  for (uint32_t base = 0; base < tiles; base += 1024) {
    const uint32_t t = base + threadIdx.x;
    const uint32_t eq = t < tiles ? tc.eq[t] : 0, gt = t < tiles ? tc.gt[t] : 0;
    uint32_t eqBefore, eqTotal;
    Scan(tmp).ExclusiveSum(eq, eqBefore, eqTotal);
    __syncthreads();
    eqBefore += carryEq;
    const uint32_t takeEq = eqBefore >= need ? 0u : min(eq, need - eqBefore);
    const uint32_t sel = t < tiles ? gt + takeEq : 0u;
    uint32_t outBefore, outTotal;
    Scan(tmp).ExclusiveSum(sel, outBefore, outTotal);
    if (t < tiles) tc.eqBefore[t] = eqBefore, tc.outBase[t] = outBefore + carryOut;
    __syncthreads();
    if (threadIdx.x == 0) carryEq += eqTotal, carryOut += outTotal;
    __syncthreads();
  }
}

// Writes indices (increasing), values and the residual of one tile.
template <class T>
__global__ void __launch_bounds__(kThreads) tileWriteKernel(const T* g, float* e, size_t n, bool vec,
                                                            const SelectState* st, TileCounts tc, ValueFormat f,
                                                            uint32_t* idxOut, uint8_t* valOut, float* stage) {
  using Scan = cub::BlockScan<uint32_t, kThreads>;
  __shared__ typename Scan::TempStorage tmp;
  const uint32_t t = st->prefix, need = st->need;
  const size_t i = blockIdx.x * size_t{kTileElems} + threadIdx.x * kPerThread;
  float y[8];
  uint32_t key[8];
  int m = 0;
  if (i < n) loadKeys8(g, e, i, n, vec, y, key, &m);
  uint32_t eq = 0;
  for (int k = 0; k < m; ++k) eq += key[k] == t;
  uint32_t eqRank;
  Scan(tmp).ExclusiveSum(eq, eqRank);
  __syncthreads();
  eqRank += tc.eqBefore[blockIdx.x];
  bool sel[8];
  uint32_t count = 0;
  for (int k = 0; k < 8; ++k) {
    sel[k] = false;
    if (k < m) {
      if (key[k] > t) sel[k] = true;
      else if (key[k] == t) sel[k] = eqRank++ < need;
    }
    count += sel[k];
  }
  uint32_t pos;
  Scan(tmp).ExclusiveSum(count, pos);
  pos += tc.outBase[blockIdx.x];
  float r[8];
  for (int k = 0; k < 8; ++k) {
    r[k] = y[k];
    if (!sel[k]) continue;
    idxOut[pos] = static_cast<uint32_t>(i + k);
    if (f == ValueFormat::Fp32) {
      reinterpret_cast<float*>(valOut)[pos] = y[k];
      r[k] = fsubRn(y[k], y[k]);  // 0, or NaN for a non-finite value, as on the CPU
    } else if (f == ValueFormat::Bf16) {
      const uint16_t b = floatToBf16(y[k]);
      reinterpret_cast<uint16_t*>(valOut)[pos] = b;
      r[k] = fsubRn(y[k], bf16ToFloat(b));
    } else {
      stage[pos] = y[k];  // quantized once the scale is known; residual fixed then
    }
    ++pos;
  }
  if (e && m > 0) storeResidual8(e, i, m, vec, r);
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};

// max |v| over quantizable staged values -> scale (one block).
__global__ void __launch_bounds__(1024) int8ScaleKernel(const float* v, size_t k, float* scaleOut) {
  using Reduce = cub::BlockReduce<float, 1024>;
  __shared__ typename Reduce::TempStorage tmp;
  float m = 0.0f;
  for (size_t j = threadIdx.x; j < k; j += 1024) {
    const float a = fabsf(v[j]);
    if (quantizable(v[j]) && a > m) m = a;
  }
  const float mx = Reduce(tmp).Reduce(m, MaxOp{});
  if (threadIdx.x == 0) *scaleOut = int8Scale(mx);
}

// int8 values; the residual at each sent index becomes y - decoded.
__global__ void int8ValuesKernel(const float* v, size_t k, const float* scalePtr, int8_t* out, float* e,
                                 const uint32_t* idx, DecodeExpect rk) {
  const float scale = *scalePtr;
  const float inv = scale > 0.0f ? fdivRn(1.0f, scale) : 0.0f;
  const RngKey key = makeRngKey(rk.seed, rk.step, 0);
  for (size_t j = blockIdx.x * size_t{blockDim.x} + threadIdx.x; j < k; j += size_t{gridDim.x} * blockDim.x) {
    const int8_t q = int8Encode(v[j], inv);
    out[j] = q;
    if (e) {
      const uint64_t i = idx ? idx[j] : randkIndex(j, rk.count, k, key, rk.chunkOffset);
      // Top-K: e[i] holds y. Random-K: e[i] holds y (residualAddKernel ran).
      e[i] = fsubRn(e[i], int8Decode(q, scale));
    }
  }
}

// ---- random-K --------------------------------------------------------------------------

// v_j = y at the j-th shared index, times the stratum size when rescaled.
template <class T>
__global__ void randkGatherKernel(const T* g, const float* e, size_t n, size_t k, RngKey key, uint64_t chunkOffset,
                                  bool rescale, bool roundBf16, float* v) {
  for (size_t j = blockIdx.x * size_t{blockDim.x} + threadIdx.x; j < k; j += size_t{gridDim.x} * blockDim.x) {
    const uint64_t i = randkIndex(j, n, k, key, chunkOffset);
    float y = e ? faddRn(toFloat(g[i]), e[i]) : toFloat(g[i]);
    if (rescale) y = fmulRn(y, randkScale(j, n, k));
    v[j] = roundBf16 ? bf16ToFloat(floatToBf16(y)) : y;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) residualAddKernel(const T* g, float* e, size_t n, bool vec) {
  for (size_t i = (blockIdx.x * size_t{kThreads} + threadIdx.x) * kPerThread; i < n;
       i += size_t{gridDim.x} * kThreads * kPerThread) {
    float y[8];
    const int m = loadY8(g, e, i, n, vec, y);
    storeResidual8(e, i, m, vec, y);
  }
}

// Payload values of random-K (fp32/bf16) and e[i] -= decoded at the indices.
__global__ void randkValuesKernel(const float* v, size_t n, size_t k, RngKey key, uint64_t chunkOffset, ValueFormat f,
                                  uint8_t* out, float* e) {
  for (size_t j = blockIdx.x * size_t{blockDim.x} + threadIdx.x; j < k; j += size_t{gridDim.x} * blockDim.x) {
    float d = v[j];
    if (out && f == ValueFormat::Fp32) reinterpret_cast<float*>(out)[j] = d;
    if (f == ValueFormat::Bf16) {
      const uint16_t b = floatToBf16(d);
      if (out) reinterpret_cast<uint16_t*>(out)[j] = b;
      d = bf16ToFloat(b);
    }
    if (e) {
      const uint64_t i = randkIndex(j, n, k, key, chunkOffset);
      e[i] = fsubRn(e[i], d);
    }
  }
}

__global__ void randkScatterKernel(const float* v, size_t n, size_t k, RngKey key, uint64_t chunkOffset, float* out) {
  for (size_t j = blockIdx.x * size_t{blockDim.x} + threadIdx.x; j < k; j += size_t{gridDim.x} * blockDim.x) {
    const uint64_t i = randkIndex(j, n, k, key, chunkOffset);
    out[i] = faddRn(out[i], v[j]);
  }
}

// ---- workspace ---------------------------------------------------------------------------

size_t align256(size_t x) { return (x + 255) & ~size_t{255}; }

struct TopKWorkspace {
  SelectState* state;
  TileCounts tiles;
  float* stage;
  float* scale;
  size_t bytes;
};

TopKWorkspace carveTopK(void* base, size_t n, size_t k) {
  const size_t tiles = (n + kTileElems - 1) / kTileElems;
  uint8_t* p = static_cast<uint8_t*>(base);
  TopKWorkspace w{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    uint8_t* r = p ? p + at : nullptr;
    at += align256(bytes);
    return r;
  };
  w.state = reinterpret_cast<SelectState*>(take(sizeof(SelectState)));
  w.tiles.gt = reinterpret_cast<uint32_t*>(take(tiles * 4));
  w.tiles.eq = reinterpret_cast<uint32_t*>(take(tiles * 4));
  w.tiles.eqBefore = reinterpret_cast<uint32_t*>(take(tiles * 4));
  w.tiles.outBase = reinterpret_cast<uint32_t*>(take(tiles * 4));
  w.stage = reinterpret_cast<float*>(take(k * 4));
  w.scale = reinterpret_cast<float*>(take(4));
  w.bytes = at;
  return w;
}

// ---- host side -------------------------------------------------------------------------------

template <class T>
void encodeTopK(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload, void* ws,
                cudaStream_t s) {
  const T* g = static_cast<const T*>(a.input);
  const size_t n = a.count, k = l.selected;
  if (k == 0) return;
  const bool vec = aligned16(a.input) && (!a.residual || aligned16(a.residual));
  TopKWorkspace w = carveTopK(ws, n, k);
  const unsigned tiles = static_cast<unsigned>((n + kTileElems - 1) / kTileElems);
  const unsigned grid = gridFor(n, kTileElems, 132 * 16);
  selectInitKernel<<<1, 1024, 0, s>>>(w.state, static_cast<uint32_t>(k));
  SQZ_CUDA_LAUNCHED();
  for (int shift : {21, 10, 0}) {
    radixHistKernel<T><<<grid, kThreads, 0, s>>>(g, a.residual, n, vec, shift, w.state);
    radixPickKernel<<<1, 1024, 0, s>>>(w.state, shift);
  }
  SQZ_CUDA_LAUNCHED();
  tileCountKernel<T><<<tiles, kThreads, 0, s>>>(g, a.residual, n, vec, w.state, w.tiles);
  tileScanKernel<<<1, 1024, 0, s>>>(w.state, w.tiles, tiles);
  uint32_t* idx = reinterpret_cast<uint32_t*>(payload + l.params);
  tileWriteKernel<T><<<tiles, kThreads, 0, s>>>(g, a.residual, n, vec, w.state, w.tiles, p.values, idx,
                                                payload + l.body, w.stage);
  SQZ_CUDA_LAUNCHED();
  if (p.values == ValueFormat::Int8) {
    int8ScaleKernel<<<1, 1024, 0, s>>>(w.stage, k, reinterpret_cast<float*>(payload + l.scale));
    int8ValuesKernel<<<gridFor(k, 256, 4096), 256, 0, s>>>(w.stage, k, reinterpret_cast<float*>(payload + l.scale),
                                                           reinterpret_cast<int8_t*>(payload + l.body), a.residual,
                                                           idx, DecodeExpect{});
    SQZ_CUDA_LAUNCHED();
  }
}

template <class T>
void encodeRandK(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload, void* ws,
                 cudaStream_t s, float* denseValues) {
  const T* g = static_cast<const T*>(a.input);
  const size_t n = a.count, k = selectedCount(p, n);
  if (k == 0) return;
  const bool vec = aligned16(a.input) && (!a.residual || aligned16(a.residual));
  const RngKey key = makeRngKey(a.seed, a.step, 0);
  float* v = denseValues ? denseValues : carveTopK(ws, n, k).stage;
  const unsigned kg = gridFor(k, 256, 4096);
  const bool roundBf16 = denseValues && p.values == ValueFormat::Bf16;
  randkGatherKernel<T><<<kg, 256, 0, s>>>(g, a.residual, n, k, key, a.chunkOffset, p.rescale, roundBf16, v);
  // Rescaled: an unbiased estimate of all of g + e, without error feedback
  // (randkResidual on the CPU): e' = 0.
  float* e = p.rescale ? nullptr : a.residual;
  if (a.residual && p.rescale) SQZ_CUDA_CHECK(cudaMemsetAsync(a.residual, 0, n * sizeof(float), s));
  if (e) residualAddKernel<T><<<gridFor(n, kThreads * kPerThread), kThreads, 0, s>>>(g, e, n, vec);
  SQZ_CUDA_LAUNCHED();
  if (!denseValues && p.values == ValueFormat::Int8) {
    DecodeExpect rk;
    rk.count = n;
    rk.chunkOffset = a.chunkOffset;
    rk.seed = a.seed;
    rk.step = a.step;
    int8ScaleKernel<<<1, 1024, 0, s>>>(v, k, reinterpret_cast<float*>(payload + l.scale));
    int8ValuesKernel<<<kg, 256, 0, s>>>(v, k, reinterpret_cast<float*>(payload + l.scale),
                                        reinterpret_cast<int8_t*>(payload + l.body), e, nullptr, rk);
  } else {
    randkValuesKernel<<<kg, 256, 0, s>>>(v, n, k, key, a.chunkOffset, denseValues ? ValueFormat::Fp32 : p.values,
                                         denseValues ? nullptr : payload + l.body, e);
  }
  SQZ_CUDA_LAUNCHED();
}

template <class T, unsigned Bits>
void launchQuant(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload, bool vec,
                 cudaStream_t s) {
  quantEncodeKernel<T, Bits><<<gridFor(l.blocks, kWarps, 132 * 32), kThreads, 0, s>>>(
      static_cast<const T*>(a.input), a.residual, a.count, vec, p.blockSize, p.stochastic,
      makeRngKey(a.seed, a.step, a.rank), a.chunkOffset, reinterpret_cast<float*>(payload + l.params),
      payload + l.body);
}

template <class T>
void encodeTyped(const CodecParams& p, const EncodeArgs& a, const PayloadLayout& l, uint8_t* payload, void* ws,
                 cudaStream_t s) {
  const bool vec = aligned16(a.input) && (!a.residual || aligned16(a.residual));
  const T* g = static_cast<const T*>(a.input);
  const unsigned grid = gridFor(a.count, kThreads * kPerThread, 132 * 32);
  switch (p.kind) {
    case CodecKind::None: castEncodeKernel<T, CodecKind::None><<<grid, kThreads, 0, s>>>(g, a.residual, a.count, vec, payload + l.body); break;
    case CodecKind::Bf16: castEncodeKernel<T, CodecKind::Bf16><<<grid, kThreads, 0, s>>>(g, a.residual, a.count, vec, payload + l.body); break;
    case CodecKind::Fp16: castEncodeKernel<T, CodecKind::Fp16><<<grid, kThreads, 0, s>>>(g, a.residual, a.count, vec, payload + l.body); break;
    case CodecKind::Quant:
      switch (p.bits) {
        case 1: launchQuant<T, 1>(p, a, l, payload, vec, s); break;
        case 2: launchQuant<T, 2>(p, a, l, payload, vec, s); break;
        case 4: launchQuant<T, 4>(p, a, l, payload, vec, s); break;
        default: launchQuant<T, 8>(p, a, l, payload, vec, s); break;
      }
      break;
    case CodecKind::Sign:
      if (p.rotate) {
        const bool shared = rotationInShared(p.blockSize);
        rotatedSignEncodeKernel<T><<<gridFor(l.blocks, 1, 132 * 16), rotationThreads(p.blockSize),
                                     shared ? p.blockSize * sizeof(float) : 0, s>>>(
            g, a.residual, a.count, p.blockSize, signRotationKey(a.seed, a.step, a.rank), a.chunkOffset,
            shared ? nullptr : static_cast<float*>(ws), reinterpret_cast<float*>(payload + l.params),
            payload + l.body);
      } else {
        signEncodeKernel<T><<<gridFor(l.blocks, kWarps, 132 * 32), kThreads, 0, s>>>(
            g, a.residual, a.count, p.blockSize, reinterpret_cast<float*>(payload + l.params), payload + l.body);
      }
      break;
    case CodecKind::TopK: encodeTopK<T>(p, a, l, payload, ws, s); break;
    case CodecKind::RandK: encodeRandK<T>(p, a, l, payload, ws, s, nullptr); break;
  }
  SQZ_CUDA_LAUNCHED();
}

// The bytes between sections that no kernel writes.
PadList padsOf(const CodecParams& p, const PayloadLayout& l, size_t n) {
  PadList pads{};
  const size_t afterStats = l.stats + l.statsBytes;
  switch (p.kind) {
    case CodecKind::None: addPad(pads, afterStats, l.body); addPad(pads, l.body + n * 4, l.total); break;
    case CodecKind::Bf16:
    case CodecKind::Fp16: addPad(pads, afterStats, l.body); addPad(pads, l.body + n * 2, l.total); break;
    case CodecKind::Quant:
      addPad(pads, afterStats, l.params);
      addPad(pads, l.params + l.blocks * 8, l.body);
      addPad(pads, l.body + (n * p.bits + 7) / 8, l.total);
      break;
    case CodecKind::Sign:
      addPad(pads, afterStats, l.params);
      if (p.rotate) {  // the key (8 bytes, written by the encoder) between the scales and the bits
        addPad(pads, l.params + l.blocks * 4, l.rotationKey);
        addPad(pads, l.rotationKey + 8, l.body);
      } else {
        addPad(pads, l.params + l.blocks * 4, l.body);
      }
      addPad(pads, l.body + (n + 7) / 8, l.total);
      break;
    case CodecKind::TopK:
    case CodecKind::RandK: {
      const size_t idxEnd = p.kind == CodecKind::TopK ? l.params + l.selected * 4 : l.params;
      addPad(pads, afterStats, l.params);
      const size_t scaleEnd = p.values == ValueFormat::Int8 ? l.scale + 4 : l.scale;
      addPad(pads, idxEnd, l.scale);
      addPad(pads, scaleEnd, l.body);
      addPad(pads, l.body + l.selected * valueBytes(p.values), l.total);
      break;
    }
  }
  return pads;
}

template <class F>
void byDtype(sqzDataType_t t, F&& f) {
  switch (t) {
    case sqzFloat32: f(static_cast<const float*>(nullptr)); break;
    case sqzFloat16: f(static_cast<const Fp16Bits*>(nullptr)); break;
    case sqzBfloat16: f(static_cast<const Bf16Bits*>(nullptr)); break;
    default: fail(sqzInvalidUsage, "codecs take float32, float16 or bfloat16, not %d", static_cast<int>(t));
  }
}

// Blocks beyond shared memory rotate in `scratch`, the caller's workspace
// (cudaDecodeWorkspaceBytes), each block at its own offset.
void decodeRotatedSign(const DecodeExpect& x, const uint8_t* payload, size_t bytes, const PayloadLayout& l,
                       float* out, DecodeMode mode, int* err, float* scratch, cudaStream_t s) {
  if (l.blocks == 0) return;
  const uint32_t B = x.params.blockSize;
  const bool shared = rotationInShared(B);
  rotatedSignDecodeKernel<<<gridFor(l.blocks, 1, 132 * 16), rotationThreads(B), shared ? B * sizeof(float) : 0, s>>>(
      payload, x, bytes, l, shared ? nullptr : scratch, out, mode, err);
  SQZ_CUDA_LAUNCHED();
}

// The whole buffer as rotation scratch, when its blocks do not fit in
// shared memory; encode and decode both rotate there.
size_t rotationScratchBytes(const CodecParams& p, size_t count) {
  if (p.kind != CodecKind::Sign || !p.rotate || rotationInShared(p.blockSize)) return 0;
  return align256(count * sizeof(float));
}

}  // namespace

bool cudaCodecAvailable() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

size_t cudaEncodeWorkspaceBytes(const CodecParams& p, size_t count) {
  if (p.kind == CodecKind::Sign && p.rotate) return rotationScratchBytes(p, count);
  if (p.kind != CodecKind::TopK && p.kind != CodecKind::RandK) return 0;
  return carveTopK(nullptr, count, selectedCount(p, count)).bytes;
}

size_t cudaDecodeWorkspaceBytes(const CodecParams& p, size_t count) { return rotationScratchBytes(p, count); }

void cudaGradStats(const void* input, sqzDataType_t dtype, const float* residual, size_t count, GradStats* devStats,
                   void* stream) {
  NvtxRange r("sqz:stats");
  if (count == 0) return;
  const bool vec = aligned16(input) && (!residual || aligned16(residual));
  const unsigned grid = gridFor((count + kStatsBlockSize - 1) / kStatsBlockSize, kWarps, 132 * 8);
  byDtype(dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    statsKernel<T><<<grid, kThreads, 0, asStream(stream)>>>(static_cast<const T*>(input), residual, count, vec, devStats);
  });
  SQZ_CUDA_LAUNCHED();
}

void cudaStatsSketch(const void* input, sqzDataType_t dtype, size_t count, uint64_t seed, GradStats* devStats,
                     void* stream) {
  if (count == 0) return;
  byDtype(dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    sketchKernel<T><<<gridFor(count, kThreads, 132 * 4), kThreads, 0, asStream(stream)>>>(static_cast<const T*>(input),
                                                                                         count, seed, devStats);
  });
  sketchNormKernel<<<1, GradStats::kSketch, 0, asStream(stream)>>>(devStats);
  SQZ_CUDA_LAUNCHED();
}

void cudaEncode(const CodecParams& p, const EncodeArgs& a, void* devPayload, void* devWorkspace, void* stream) {
  NvtxRange r("sqz:compress");
  if (const char* why = checkCodecParams(p)) fail(sqzInvalidUsage, "codec parameters: %s", why);
  SQZ_REQUIRE(!p.blockedIndices, sqzInvalidUsage, "the CUDA top-K codec writes 32-bit indices only");
  SQZ_REQUIRE(a.count <= kMaxChunkElements, sqzInvalidUsage, "chunk of %zu elements exceeds 2^32-1", a.count);
  SQZ_REQUIRE(devWorkspace != nullptr || cudaEncodeWorkspaceBytes(p, a.count) == 0, sqzInvalidUsage,
              "codec %d needs a workspace", static_cast<int>(p.kind));
  SQZ_REQUIRE(aligned16(devPayload), sqzInvalidUsage, "device payloads must be 16-byte aligned");
  cudaStream_t s = asStream(stream);
  const PayloadLayout l = payloadLayout(p, a.count, a.stats != nullptr);
  uint8_t* payload = static_cast<uint8_t*>(devPayload);
  const bool rotated = p.kind == CodecKind::Sign && p.rotate;
  headerKernel<<<1, 256, 0, s>>>(makeWireHeader(p, a.count, a.chunkOffset, l), payload, padsOf(p, l, a.count),
                                 rotated ? signRotationKey(a.seed, a.step, a.rank) : 0, rotated ? l.rotationKey : 0);
  SQZ_CUDA_LAUNCHED();
  if (a.stats)
    SQZ_CUDA_CHECK(cudaMemcpyAsync(payload + l.stats, a.stats, sizeof(GradStats), cudaMemcpyDeviceToDevice, s));
  if (a.count == 0) return;
  byDtype(a.dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    encodeTyped<T>(p, a, l, payload, devWorkspace, s);
  });
}

void cudaDecode(const DecodeExpect& x, const void* devPayload, size_t bytes, float* devOut, DecodeMode mode,
                int* devError, void* devWorkspace, void* stream) {
  NvtxRange r("sqz:decode");
  if (const char* why = checkCodecParams(x.params)) fail(sqzInvalidUsage, "codec parameters: %s", why);
  SQZ_REQUIRE(!x.params.blockedIndices, sqzInvalidUsage, "the CUDA top-K codec reads 32-bit indices only");
  SQZ_REQUIRE(devWorkspace != nullptr || cudaDecodeWorkspaceBytes(x.params, x.count) == 0, sqzInvalidUsage,
              "decoding sign:rot with blocks of %u elements needs a workspace of %zu bytes",
              static_cast<unsigned>(x.params.blockSize), cudaDecodeWorkspaceBytes(x.params, x.count));
  SQZ_REQUIRE(aligned16(devPayload), sqzInvalidUsage, "device payloads must be 16-byte aligned");
  cudaStream_t s = asStream(stream);
  const uint8_t* payload = static_cast<const uint8_t*>(devPayload);
  const PayloadLayout l = payloadLayout(x.params, x.count, x.withStats);
  const bool vec = aligned16(devOut) && aligned16(payload);
  const unsigned grid = gridFor(x.count, kThreads * kPerThread, 132 * 32);
  switch (x.params.kind) {
    case CodecKind::None: castDecodeKernel<CodecKind::None><<<grid, kThreads, 0, s>>>(payload, x, bytes, l.body, devOut, vec, mode, devError); break;
    case CodecKind::Bf16: castDecodeKernel<CodecKind::Bf16><<<grid, kThreads, 0, s>>>(payload, x, bytes, l.body, devOut, vec, mode, devError); break;
    case CodecKind::Fp16: castDecodeKernel<CodecKind::Fp16><<<grid, kThreads, 0, s>>>(payload, x, bytes, l.body, devOut, vec, mode, devError); break;
    case CodecKind::Quant: {
      validateKernel<<<gridFor(l.blocks, 256, 4096), 256, 0, s>>>(payload, x, bytes, l, devError);
      const unsigned qg = gridFor(l.blocks, kWarps, 132 * 32);
      switch (x.params.bits) {
        case 1: quantDecodeKernel<1><<<qg, kThreads, 0, s>>>(payload, x, bytes, l, devOut, vec, mode, devError); break;
        case 2: quantDecodeKernel<2><<<qg, kThreads, 0, s>>>(payload, x, bytes, l, devOut, vec, mode, devError); break;
        case 4: quantDecodeKernel<4><<<qg, kThreads, 0, s>>>(payload, x, bytes, l, devOut, vec, mode, devError); break;
        default: quantDecodeKernel<8><<<qg, kThreads, 0, s>>>(payload, x, bytes, l, devOut, vec, mode, devError); break;
      }
      break;
    }
    case CodecKind::Sign:
      validateKernel<<<gridFor(l.blocks, 256, 4096), 256, 0, s>>>(payload, x, bytes, l, devError);
      if (x.params.rotate) {
        decodeRotatedSign(x, payload, bytes, l, devOut, mode, devError, static_cast<float*>(devWorkspace), s);
      } else {
        signDecodeKernel<<<gridFor(l.blocks, kWarps, 132 * 32), kThreads, 0, s>>>(payload, x, bytes, l, devOut, mode,
                                                                                devError);
      }
      break;
    case CodecKind::TopK:
    case CodecKind::RandK:
      validateKernel<<<gridFor(l.selected, 256, 4096), 256, 0, s>>>(payload, x, bytes, l, devError);
      if (mode == DecodeMode::Overwrite && x.count)
        zeroKernel<<<gridFor(x.count, 256, 132 * 32), 256, 0, s>>>(payload, x, bytes, devOut, devError);
      if (l.selected)
        sparseDecodeKernel<<<gridFor(l.selected, 256, 4096), 256, 0, s>>>(payload, x, bytes, l, devOut, devError);
      break;
  }
  SQZ_CUDA_LAUNCHED();
}

const char* cudaDecodeErrorString(int code) {
  switch (code) {
    case kDecodeOk: return "no error";
    case kBadHeader: return "malformed payload: header does not match the expectation";
    case kBadBlockScale: return "malformed payload: non-finite or negative block scale";
    case kBadIndex: return "malformed payload: index out of range or not increasing";
    case kBadValueScale: return "malformed payload: non-finite value scale";
    default: return "unknown decode error";
  }
}

void cudaRandkGather(const CodecParams& p, const EncodeArgs& a, float* devValues, void* stream) {
  NvtxRange r("sqz:randk_gather");
  if (const char* why = checkCodecParams(p)) fail(sqzInvalidUsage, "codec parameters: %s", why);
  byDtype(a.dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    encodeRandK<T>(p, a, PayloadLayout{}, nullptr, nullptr, asStream(stream), devValues);
  });
}

void cudaRandkScatter(const CodecParams& p, size_t count, uint64_t seed, uint64_t step, uint64_t chunkOffset,
                      const float* devValues, float* devOut, DecodeMode mode, void* stream) {
  NvtxRange r("sqz:randk_scatter");
  cudaStream_t s = asStream(stream);
  const size_t k = selectedCount(p, count);
  if (mode == DecodeMode::Overwrite && count) SQZ_CUDA_CHECK(cudaMemsetAsync(devOut, 0, count * sizeof(float), s));
  if (k) randkScatterKernel<<<gridFor(k, 256, 4096), 256, 0, s>>>(devValues, count, k, makeRngKey(seed, step, 0), chunkOffset, devOut);
  SQZ_CUDA_LAUNCHED();
}

namespace {
template <class T>
void addTypedKernels(std::vector<const void*>& k) {
  const void* entries[] = {
      reinterpret_cast<const void*>(&statsKernel<T>),
      reinterpret_cast<const void*>(&castEncodeKernel<T, CodecKind::None>),
      reinterpret_cast<const void*>(&castEncodeKernel<T, CodecKind::Bf16>),
      reinterpret_cast<const void*>(&castEncodeKernel<T, CodecKind::Fp16>),
      reinterpret_cast<const void*>(&quantEncodeKernel<T, 1>),
      reinterpret_cast<const void*>(&quantEncodeKernel<T, 2>),
      reinterpret_cast<const void*>(&quantEncodeKernel<T, 4>),
      reinterpret_cast<const void*>(&quantEncodeKernel<T, 8>),
      reinterpret_cast<const void*>(&radixHistKernel<T>),
      reinterpret_cast<const void*>(&tileCountKernel<T>),
      reinterpret_cast<const void*>(&tileWriteKernel<T>),
      reinterpret_cast<const void*>(&randkGatherKernel<T>),
      reinterpret_cast<const void*>(&residualAddKernel<T>),
      reinterpret_cast<const void*>(&signEncodeKernel<T>),
      reinterpret_cast<const void*>(&rotatedSignEncodeKernel<T>),
      reinterpret_cast<const void*>(&sketchKernel<T>),
  };
  k.insert(k.end(), std::begin(entries), std::end(entries));
}
}  // namespace

std::vector<const void*> cudaCodecKernelEntries() {
  std::vector<const void*> k = {
      reinterpret_cast<const void*>(&headerKernel),
      reinterpret_cast<const void*>(&validateKernel),
      reinterpret_cast<const void*>(&castDecodeKernel<CodecKind::None>),
      reinterpret_cast<const void*>(&castDecodeKernel<CodecKind::Bf16>),
      reinterpret_cast<const void*>(&castDecodeKernel<CodecKind::Fp16>),
      reinterpret_cast<const void*>(&quantDecodeKernel<1>),
      reinterpret_cast<const void*>(&quantDecodeKernel<2>),
      reinterpret_cast<const void*>(&quantDecodeKernel<4>),
      reinterpret_cast<const void*>(&quantDecodeKernel<8>),
      reinterpret_cast<const void*>(&zeroKernel),
      reinterpret_cast<const void*>(&sparseDecodeKernel),
      reinterpret_cast<const void*>(&selectInitKernel),
      reinterpret_cast<const void*>(&radixPickKernel),
      reinterpret_cast<const void*>(&tileScanKernel),
      reinterpret_cast<const void*>(&int8ScaleKernel),
      reinterpret_cast<const void*>(&int8ValuesKernel),
      reinterpret_cast<const void*>(&randkValuesKernel),
      reinterpret_cast<const void*>(&randkScatterKernel),
      reinterpret_cast<const void*>(&signDecodeKernel),
      reinterpret_cast<const void*>(&rotatedSignDecodeKernel),
      reinterpret_cast<const void*>(&sketchNormKernel),
  };
  addTypedKernels<float>(k);
  addTypedKernels<Fp16Bits>(k);
  addTypedKernels<Bf16Bits>(k);
  return k;
}

}  // namespace sqz
