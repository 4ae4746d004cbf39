// The per-element math of sign:rot's rotation (kernels/cpu_sign_rotation.h
// says what the rotation is and why), written once for host and device:
// keys, D's sign flips, the power-of-two pieces of a block, one butterfly of
// the Walsh-Hadamard transform and its norm. Additions, subtractions and the
// one product per element go through codec_math.h's *Rn helpers, and both
// sides run the transform's stages in the same order (h = 1, 2, 4, ...), so
// the CPU and the GPU rotate a block to the same bits and their payloads,
// residuals and decodings are identical.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/splitmix.h"
#include "kernels/codec_math.h"

namespace sqz {

// One key per encode call, carried in the payload.
SQZ_HD uint64_t signRotationKey(uint64_t seed, uint64_t step, uint32_t rank) {
  return splitmix64(splitmix64(splitmix64(seed) ^ step) ^ rank);
}

// A block's key from the call's and the position of the block's first
// element in the whole buffer (so any chunking rotates a block alike).
SQZ_HD uint64_t signRotationBlockKey(uint64_t callKey, uint64_t position) {
  return splitmix64(callKey ^ splitmix64(position));
}

// D's signs: one hash per 64 elements of a block; bit j of word w flips
// element 64 w + j.
SQZ_HD uint64_t signFlipWord(uint64_t blockKey, uint64_t w) { return splitmix64(blockKey + w); }
SQZ_HD uint32_t signFlipMask(uint64_t word, unsigned j) { return static_cast<uint32_t>((word >> j) & 1u) << 31; }
SQZ_HD float signFlip(float x, uint64_t word, unsigned j) { return bitsFloat(floatBits(x) ^ signFlipMask(word, j)); }

// A block whose length is not a power of two is rotated as consecutive
// power-of-two pieces, largest first: the piece that starts where
// `remaining` (> 0) elements are left is the largest power of two <= it.
SQZ_HD size_t signRotationPiece(size_t remaining) {
  size_t m = 1;
  while (m <= remaining / 2) m *= 2;
  return m;
}

// One butterfly of the unnormalized transform: (a, b) <- (a + b, a - b).
SQZ_HD void hadamardButterfly(float* a, float* b) {
  const float s = faddRn(*a, *b), d = fsubRn(*a, *b);
  *a = s;
  *b = d;
}

// The transform's norm for a piece of m = 2^k elements: 1 / sqrt(2^k),
// exact for even k (a power of two times the float nearest 1/sqrt(2) for
// odd k).
SQZ_HD float hadamardNorm(size_t m) {
  unsigned k = 0;
  while ((size_t{1} << k) < m) ++k;
  float c = (k & 1u) ? 0.70710678118654752f : 1.0f;
  for (unsigned i = 0; i < k / 2; ++i) c *= 0.5f;
  return c;
}

// What the statistics predict of sign:rot on one block y (sumSq = ||y||^2,
// maxSq = its largest y_j^2), over the rotation's random signs D, from the
// block's shape alone (src/tuner/README.md section 6 derives both). With t =
// |y_max| / ||rest|| (rest: the block without its largest value), taken as
// near Gaussian once rotated, F = erf(t / sqrt 2) and u = sqrt(2 / pi)
// exp(-t^2 / 2):
// - commonSq: the squared norm of the error every key makes alike,
//   ||E_D[R^T C(R y)] - y||^2 = ||y||^2 (F - t u)^2 / (t F + u)^2: 0 for a
//   block with no dominant value (Bussgang), one key's whole error where one
//   value dominates (every key's signs follow it; the rest is lost alike);
// - errorSq: one key's squared error, ||y||^2 ((1 + t^2) / (t F + u)^2 - 1)
//   (the rotated block's delta is (t F + u)^2 / (1 + t^2): pi/2 - 1 of
//   ||y||^2 for t = 0).
// Both 0 for a block of one value (rotated flat, signed exactly).
SQZ_HD void signRotationBlockErrors(double sumSq, double maxSq, double* commonSq, double* errorSq) {
  const double rest = sumSq - maxSq;
  *commonSq = 0.0;
  *errorSq = 0.0;
  if (!(sumSq > 0.0) || !(maxSq > 0.0) || !(rest > 0.0)) return;
  const double t = sqrt(maxSq / rest);
  const double F = erf(t * 0.70710678118654752440);
  const double u = 0.79788456080286535588 * exp(-0.5 * t * t);
  const double lost = F - t * u, kept = t * F + u;
  *commonSq = sumSq * lost * lost / (kept * kept);
  const double error = (1.0 + t * t) / (kept * kept) - 1.0;
  *errorSq = sumSq * (error > 0.0 ? error : 0.0);
}

}  // namespace sqz
