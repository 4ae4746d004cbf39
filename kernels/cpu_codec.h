// The codecs on the CPU: statistics, encode with fused error feedback, and a
// validating decode that overwrites or accumulates. Same payload bytes as the
// CUDA path (kernels/cuda_codec.h) for the same input and key.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/codec_params.h"
#include "kernels/grad_stats.h"
#include "kernels/wire_format.h"
#include "sqz.h"

namespace sqz {

enum class DecodeMode : uint8_t { Overwrite, Accumulate };

// One chunk to encode. The RNG key of element i is (seed, step, rank,
// chunkOffset + i), so any chunking of a buffer draws the same numbers.
struct EncodeArgs {
  const void* input = nullptr;      // count elements of dtype
  sqzDataType_t dtype = sqzFloat32; // sqzFloat32, sqzFloat16 or sqzBfloat16
  size_t count = 0;
  float* residual = nullptr;        // error feedback: e in, e' = (g + e) - decode out; null: none
  uint64_t seed = 0;
  uint64_t step = 0;
  uint32_t rank = 0;
  uint64_t chunkOffset = 0;
  const GradStats* stats = nullptr; // copied into the payload's statistics block when set
};

struct EncodeResult {
  size_t bytes = 0;           // payload bytes written (== encodedBytes)
  size_t nonQuantizable = 0;  // NaN/Inf/|x|>2^126 seen by a quantizer; they stay in the residual
};

// Throws sqz::Error(sqzInvalidUsage) on bad parameters or a small buffer.
EncodeResult encodeCpu(const CodecParams& p, const EncodeArgs& a, void* payload, size_t capacity);

// Validates the header and every index against `expect`, then writes
// expect.count values to out (overwrite or out[i] += x[i]). A malformed
// payload throws sqz::Error(sqzInvalidUsage) before anything is written.
// statsOut (optional) receives the statistics block, which must be present.
void decodeCpu(const DecodeExpect& expect, const void* payload, size_t bytes, float* out, DecodeMode mode,
               GradStats* statsOut = nullptr);

// Statistics of g + e (residual may be null), added into *stats. One read pass.
void gradStatsCpu(const void* input, sqzDataType_t dtype, const float* residual, size_t count, GradStats* stats);

// Adds the count sketch of x[0 .. count) (buffer indices firstIndex ..) into
// buckets[GradStats::kSketch]: sketchSign(j, seed) x_j into sketchBucket(j, seed).
void statsSketchCpu(const void* input, sqzDataType_t dtype, size_t count, uint64_t firstIndex, uint64_t seed,
                    double* buckets);

// Random-K without a payload, for the dense path of the collectives: the K
// indices every rank shares, the gather of (g + e) at them (scaled by the
// stratum size when p.rescale, rounded through p.values, residual updated so
// nothing is lost), and the scatter of (summed) values back.
void randkIndicesCpu(const CodecParams& p, size_t count, uint64_t seed, uint64_t step, uint64_t chunkOffset,
                     uint64_t* indices);
void randkGatherCpu(const CodecParams& p, const EncodeArgs& a, float* values);
void randkScatterCpu(const CodecParams& p, size_t count, uint64_t seed, uint64_t step, uint64_t chunkOffset,
                     const float* values, float* out, DecodeMode mode);

}  // namespace sqz
