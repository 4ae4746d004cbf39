#include "kernels/cpu_sign_rotation.h"

#include <cstring>

namespace sqz {
namespace {

// D's signs (signFlipWord, signFlipMask), 64 elements per hash; the bits
// are flipped in place, which vectorizes.
void flipSigns(float* __restrict x, size_t n, uint64_t blockKey) {
  for (size_t w = 0; 64 * w < n; ++w) {
    const uint64_t bits = signFlipWord(blockKey, w);
    float* v = x + 64 * w;
    const size_t m = n - 64 * w < 64 ? n - 64 * w : 64;
    for (size_t j = 0; j < m; ++j) {
      uint32_t u;
      std::memcpy(&u, v + j, 4);
      u ^= signFlipMask(bits, static_cast<unsigned>(j));
      std::memcpy(v + j, &u, 4);
    }
  }
}

// The first three stages (h = 1, 2, 4) within each group of 8, written out
// so the compiler keeps the group in registers (and vectorizes across
// groups): hadamardButterfly's sums and differences, in its stage order.
void hadamard8(float* __restrict v, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    float* a = v + i;
    const float s0 = a[0] + a[1], d0 = a[0] - a[1], s1 = a[2] + a[3], d1 = a[2] - a[3];
    const float s2 = a[4] + a[5], d2 = a[4] - a[5], s3 = a[6] + a[7], d3 = a[6] - a[7];
    const float t0 = s0 + s1, t1 = d0 + d1, t2 = s0 - s1, t3 = d0 - d1;
    const float t4 = s2 + s3, t5 = d2 + d3, t6 = s2 - s3, t7 = d2 - d3;
    a[0] = t0 + t4; a[1] = t1 + t5; a[2] = t2 + t6; a[3] = t3 + t7;
    a[4] = t0 - t4; a[5] = t1 - t5; a[6] = t2 - t6; a[7] = t3 - t7;
  }
}

// Unnormalized Walsh-Hadamard transform of v[0 .. n), n a power of two. The
// stages with h >= 8 are runs of independent lanes, which vectorize.
void hadamard(float* v, size_t n) {
  size_t h = 1;
  if (n >= 8) {
    hadamard8(v, n);
    h = 8;
  }
  for (; h < n; h *= 2)
    for (size_t i = 0; i < n; i += 2 * h) {
      float* __restrict lo = v + i;
      float* __restrict hi = v + i + h;
      for (size_t j = 0; j < h; ++j) hadamardButterfly(&lo[j], &hi[j]);
    }
}

void hadamardPieces(float* x, size_t n) {
  for (size_t at = 0; at < n;) {
    const size_t piece = signRotationPiece(n - at);
    float* v = x + at;
    hadamard(v, piece);
    const float c = hadamardNorm(piece);
    for (size_t j = 0; j < piece; ++j) v[j] = fmulRn(v[j], c);
    at += piece;
  }
}

}  // namespace

void rotateSignBlock(float* x, size_t n, uint64_t blockKey) {
  flipSigns(x, n, blockKey);
  hadamardPieces(x, n);
}

void unrotateSignBlock(float* x, size_t n, uint64_t blockKey) {
  hadamardPieces(x, n);
  flipSigns(x, n, blockKey);
}

}  // namespace sqz
