// Statistics of one gradient buffer from one read pass (DESIGN.md section 1):
// enough to predict, for every codec and level, how much of the squared norm
// survives (gain), and to notice non-finite values. Every field is a double
// that reduces across ranks (and across chunks) by plain addition, so the
// struct travels as an array of kDoubles doubles through any sum-allreduce.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/codec_math.h"
#include "kernels/codec_params.h"

namespace sqz {

// The quantization variance sums are measured on blocks of this size.
inline constexpr uint32_t kStatsBlockSize = 256;

struct GradStats {
  // Magnitude histogram: 4 bins per octave from 2^-48 to 2^16; smaller
  // magnitudes (and zeros) fall into bin 0, larger ones into the last bin
  // (which starts at 57344, so fp16's gain is conservative near its limit).
  static constexpr int kBins = 256;
  static constexpr int kBinsPerOctave = 4;
  static constexpr int kMinExponent = -48;
  static constexpr int kQuantWidths = 4;  // b = 1, 2, 4, 8
  // Buckets of the count sketch (see sketch[]).
  static constexpr int kSketch = 128;  // the whole GradStats stays within 8 KiB

  double elements;     // values seen, non-finite included
  double sumSq;        // sum of x^2 over quantizable values
  double nonFinite;    // NaN, Inf or |x| > 2^126: the caller must send exactly
  double quantBlocks;  // blocks of kStatsBlockSize seen
  double quantVar[kQuantWidths];  // sum over blocks of n_b * delta_b^2 / 4
  // The scaled sign at kStatsBlockSize (signBlockShares): the part of sumSq
  // it keeps, and its error's component along x (what error feedback owes
  // along the gradient).
  double signKept;
  double signAligned;
  // The rotated sign (sign:rot) at kStatsBlockSize, from each block's sum of
  // squares and largest square (signRotationBlockErrors): the squared error
  // every rotation key makes alike (what does not average out over ranks),
  // and one key's squared error.
  double signRotCommon;
  double signRotError;
  // Error feedback: sum of e^2 of the residual this buffer carries (scaled
  // as sumSq when sampled), and how many ranks measured it.
  double residualSq;
  double residualRanks;
  // Gradient noise and drift (McCandlish et al. 2018): a count sketch of g
  // over the elements the statistics read. Element j (its index in the
  // buffer) adds sketchSign(j, seed) x_j to bucket sketchBucket(j, seed),
  // the same on every rank (the seed: TuningState::sketchSeed), so the reduced sketch[] is the sketch of sum_i g_i, and
  // sum_k sketch_k^2 estimates ||sum_i g_i||^2; sketchSq, a rank's own
  // sum_k sketch_k^2 summed over ranks, estimates sum_i ||g_i||^2 on the
  // same elements. sketchResidual[] sketches the error-feedback residual
  // owed at those elements (the rank's own, plus the owner's residual of a
  // qa2a chunk): the reduced one is N times what the averaged update owes.
  double sketchSq;
  double sketchRanks;  // ranks that sketched g (0: none)
  // Seconds this rank spent outside this buffer's allreduce since the
  // buffer's previous call (the rest of the training step; 0: unknown).
  double otherSeconds;
  // Seconds this rank spent on auto's own work for this buffer (statistics,
  // choices, waiting for the statistics) since the buffer's previous
  // exchange (0: unknown).
  double tunerSeconds;
  // Seconds since this rank's previous allreduce of any buffer ended (the
  // links' idle time before this call; 0: unknown).
  double idleSeconds;
  // Seconds this rank's previous call of this buffer spent running its plan
  // (encoding, transfers, decoding), from the end of its header round
  // (every rank has arrived by then, so no wait for a late rank is in it)
  // to its end, auto's own work left out (0: unknown: a call whose header
  // rode its first message, or that carried statistics). What checks that a
  // link's idle credit shows (ProgressTracker::creditRealized).
  double planSeconds;
  double sketch[kSketch];
  double sketchResidual[kSketch];
  double binCount[kBins];
  double binSumSq[kBins];

  static constexpr size_t kDoubles = 4 + kQuantWidths + 12 + 2 * kSketch + 2 * kBins;
};
static_assert(sizeof(GradStats) == GradStats::kDoubles * sizeof(double), "GradStats must be a flat array of doubles");

SQZ_HD int quantWidthIndex(unsigned bits) { return bits == 1 ? 0 : bits == 2 ? 1 : bits == 4 ? 2 : 3; }
SQZ_HD unsigned quantWidthBits(int index) { return 1u << index; }

// Histogram bin of a magnitude key (see magnitudeKey): the exponent and the
// top two mantissa bits, i.e. four linear sub-bins per octave (edges 1,
// 1.25, 1.5, 1.75 times a power of two), found with one shift.
SQZ_HD int statsBin(uint32_t key) {
  constexpr int kBase = (127 + GradStats::kMinExponent) * GradStats::kBinsPerOctave;
  int b = static_cast<int>(key >> 21) - kBase;
  b = b < 0 ? 0 : b;
  return b < GradStats::kBins - 1 ? b : GradStats::kBins - 1;
}

// The count sketch's bucket and sign of the element at buffer index j under
// `seed` (a 64-bit mix, the same on every rank and device; a new seed
// sketches with other buckets, so averages over exchanges lose the
// sketch's own error).
SQZ_HD uint32_t sketchHash(uint64_t j, uint64_t seed) {
  uint64_t z = (j + 1 + seed * 0xd1b54a32d192ed03ull) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}
SQZ_HD uint32_t sketchBucket(uint64_t j, uint64_t seed) { return sketchHash(j, seed) % GradStats::kSketch; }
SQZ_HD double sketchSign(uint64_t j, uint64_t seed) { return (sketchHash(j, seed) >> 16) & 1u ? 1.0 : -1.0; }

// Lower edge of bin b (bin 0 starts at zero).
double statsBinLowerEdge(int bin);

void clearStats(GradStats* s);
void addStats(GradStats* into, const GradStats& from);

// The fraction of squared norm that the k largest magnitudes hold, from the
// histogram: whole bins from the top, then a share of the bin where the k-th
// largest falls (its sum of squares split evenly by count). The error is at
// most that one bin's share of the norm.
double topkKeptFraction(const GradStats& s, double k);

// gain(level) of DESIGN.md section 1 for this codec: fraction of squared
// norm kept (top-K, random-K) or 1 / (1 + omega) (quantizers, casts). 1 for
// "none" and for an all-zero buffer; 0 when the stats saw non-finite values
// (no codec applies: the call goes exact).
double gain(const GradStats& s, const CodecParams& p);

}  // namespace sqz
