// The value check of a lossy allreduce, shared by every test of one (the
// thread-rank tests, the process tests, the soak, the GPU tests): the
// result against the fp64 sum of what each rank contributed, with the
// bound of the codec and algorithm that sqzGetCallInfo says ran.
//
//   exact, bf16/fp16   every element within the roundings its path makes
//   qB (stochastic)    every element within the worst case; the squared
//                      error within the variance of the encodings the
//                      algorithm makes (DESIGN.md: delta^2/4 per element
//                      and encoding, from the block ranges); and the error
//                      uncorrelated with the exact sum and with 1
//                      (self-normalized: |sum e*S| <= z sqrt(sum e^2 S^2)),
//                      which a zeroed, halved, shifted or offset output is not
//   qB:rn              worst case and squared error (deterministic rounding)
//   topk               every element a sub-sum of the contributions (values as
//                      stored), including every contributor whose largest
//                      values hold it, and nonzero >= K
//   randk              exactly one kept index per stratum, exact there
//
// Statistical power has a floor: with 1-bit codecs at 8 ranks the noise is
// ~50x the signal's energy per element, so a halved output of ~1000
// elements lies within z of a real one; tests that show rejection use
// enough elements (test_lossy_check.cc).
#pragma once

#include <string>
#include <vector>

#include "sqz.h"

namespace sqz::test {

// What ran, as sqzGetCallInfo reports it, and the call's type and op.
struct LossyCall {
  std::string plan;            // "@qa2a:q4", "@hier/bf16/qa2a:q8", "@ring", ...
  std::string codec;           // "q4", "topk:0.01:int8", "none", ...
  bool exact = false;
  sqzDataType_t type = sqzFloat32;  // of the output: its rounding
  sqzRedOp_t op = sqzSum;           // sqzSum or sqzAvg
  std::vector<int> nodeOf;          // hierarchical plans: each rank's node, 0..nodes-1

  static LossyCall of(const sqzCallInfo& info, sqzDataType_t type, sqzRedOp_t op);
};

// What each rank's call reduced, element by element: its input, plus what
// error feedback carried into the call (zero on a fresh state).
using Contributions = std::vector<std::vector<float>>;

// "" when `out` (the result, converted to float) passes, else why not.
std::string checkLossy(const Contributions& y, const std::vector<float>& out, const LossyCall& call);

// Deliberately broken results, for showing that a check rejects them.
enum class Breakage { Zeroed, Halved, Shifted, Offset, DroppedChunk, SkippedLastBlock, Negated };
// All but SkippedLastBlock and Negated (every sign flipped), kept for the
// checks that name them; SkippedLastBlock touches 0.5-2% of the elements: below the
// statistical floor of 1- and 2-bit codecs (test_lossy_check.cc).
const std::vector<Breakage>& allBreakages();
const char* breakageName(Breakage b);
// Zeroed; every value halved (negated); shifted by one element (rotated); every value
// plus the output's RMS; the elements of one rank's share (chunk nranks/2 of
// an even split) zeroed; the last 256 elements (a quantizer's default block)
// of every rank's chunk zeroed, as a decoder that skips its last block.
std::vector<float> breakOutput(const std::vector<float>& out, Breakage b, int nranks);

}  // namespace sqz::test
