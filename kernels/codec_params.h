// What a codec is, as the kernels see it: a small POD that both the CPU and
// the CUDA code take by value. Parsing names ("q4:block=256:rn") lives in
// src/codec; kernels never see strings.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/half.h"

namespace sqz {

// Sign: scaled sign (one bit per element, one fp32 scale per block: the
// block's mean |x|), biased but contractive, for use with error feedback
// (EF-SignSGD, Karimireddy et al. 2019; 1-bit Adam, Tang et al. 2021).
enum class CodecKind : uint8_t { None = 0, Bf16 = 1, Fp16 = 2, Quant = 3, TopK = 4, RandK = 5, Sign = 6 };

// How top-K / random-K values are stored on the wire.
enum class ValueFormat : uint8_t { Fp32 = 0, Bf16 = 1, Int8 = 2 };

struct CodecParams {
  CodecKind kind = CodecKind::None;
  uint8_t bits = 0;                       // Quant: 1, 2, 4 or 8
  bool stochastic = true;                 // Quant: unbiased stochastic rounding, else round-to-nearest
  ValueFormat values = ValueFormat::Fp32; // TopK/RandK value storage
  bool rescale = false;                   // RandK: multiply values by the stratum size (unbiased)
  bool rotate = false;                    // Sign: randomized Hadamard rotation per block (kernels/cpu_sign_rotation.h)
  uint32_t blockSize = 0;                 // Quant: elements per block (multiple of 8); Sign: (multiple of 32)
  double ratio = 0.0;                     // TopK/RandK: fraction of elements kept, in (0, 1]
  // TopK: indices as per-block counts and 16-bit offsets where that is
  // smaller (kernels/wire_format.h); the host sparse allreduce sets it, the
  // CUDA codec keeps 32-bit indices.
  bool blockedIndices = false;
};

// One default block size for every width (measured with perf/codec, see
// perf/results/codec_cpu.md): at 256 the per-block header (8 bytes) costs
// 3% of a q8 block and 6% of a q4 block, throughput has flattened, and the
// statistics pass measures omega at exactly this size (kStatsBlockSize).
inline constexpr uint32_t defaultBlockSize(unsigned /*bits*/) { return 256u; }
// The scaled sign's block: at 256 its fp32 scale costs 1/8 bit per element,
// and the statistics measure what it keeps at exactly this size.
inline constexpr uint32_t kDefaultSignBlockSize = 256u;

inline constexpr uint32_t kMaxBlockSize = 1u << 16;
// A sign block is a whole number of 32-element words (one warp ballot each).
inline constexpr uint32_t kSignBlockMultiple = 32;

// The number of values top-K / random-K keep from n: ceil(ratio * n), at
// least one when n > 0 and at most n.
SQZ_HD size_t selectedCount(const CodecParams& p, size_t n) {
  if (n == 0) return 0;
  double k = p.ratio * static_cast<double>(n);
  size_t ki = static_cast<size_t>(k);
  if (static_cast<double>(ki) < k) ++ki;
  if (ki < 1) ki = 1;
  if (ki > n) ki = n;
  return ki;
}

SQZ_HD size_t valueBytes(ValueFormat f) {
  return f == ValueFormat::Fp32 ? 4 : (f == ValueFormat::Bf16 ? 2 : 1);
}

// Quantization levels above the lowest: 2^bits - 1.
SQZ_HD constexpr uint32_t maxCode(unsigned bits) { return (1u << bits) - 1u; }

}  // namespace sqz
