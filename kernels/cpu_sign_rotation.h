// The randomized Hadamard rotation of `sign:rot` (Suresh et al. 2017,
// "Distributed Mean Estimation with Limited Communication"): each sign
// block y is sent as sign(R y) with R = H D / sqrt(len), D a random +-1
// diagonal and H the Walsh-Hadamard matrix, and decoded as R^T of the scaled
// signs. R is orthonormal, so error feedback's residual is the same vector in
// either domain; what it changes is the block's shape: after R the block's
// |values| are close to even, the sign's delta = (sum |y|)^2 / (len ||y||^2)
// is near 2/pi whatever the gradient's shape, and one large coordinate no
// longer leaves the rest of its block to be carried by the residual
// (perf/results/training.md, issue 14's rotation section).
//
// Keys: one per encode call from (seed, step, encoder rank), stored in the
// payload, so any rank decodes any rank's payload; each block's D from
// (call key, position of the block's first element in the whole buffer), so
// any chunking of a buffer rotates each block the same way. The per-element
// math (keys, flips, pieces, butterflies) is kernels/sign_rotation_math.h,
// which the CUDA kernels share.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/sign_rotation_math.h"

namespace sqz {

// In place on x[0 .. n): forward x <- H D x / sqrt(len), inverse x <- D H x /
// sqrt(len) (H is symmetric and H H = len I). A block whose length is not a
// power of two (a buffer's last one) is rotated as consecutive power-of-two
// pieces, largest first (its length's binary digits), each with its own H.
void rotateSignBlock(float* x, size_t n, uint64_t blockKey);
void unrotateSignBlock(float* x, size_t n, uint64_t blockKey);

}  // namespace sqz
