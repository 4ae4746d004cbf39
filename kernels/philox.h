// Counter-based RNG (Philox4x32, Salmon et al., SC'11): the random number of
// element i depends only on (seed, step, rank, i), so CPU and GPU, and any
// chunking of the buffer, draw the same numbers with no state to carry.
#pragma once

#include <cstdint>

#include "kernels/half.h"

namespace sqz {

// Ten rounds is the published default with a wide safety margin (7 already
// pass BigCrush); the cost is hidden behind memory bandwidth on both sides.
inline constexpr int kPhiloxRounds = 10;

struct Philox4 {
  uint32_t v[4];
};

SQZ_HD void philoxMulHiLo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  *lo = a * b;
#else
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
#endif
}

SQZ_HD Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < kPhiloxRounds; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philoxMulHiLo(0xD2511F53u, c0, &hi0, &lo0);
    philoxMulHiLo(0xCD9E8D57u, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// The key of one encode call. Counter = (element group, step, rank): each
// Philox call yields the numbers of four consecutive elements (i / 4).
struct RngKey {
  uint32_t k0, k1;      // seed
  uint32_t step, rank;  // counter words 2 and 3
};

SQZ_HD RngKey makeRngKey(uint64_t seed, uint64_t step, uint32_t rank) {
  // Steps beyond 2^32 fold their high half into the key so they never repeat.
  return RngKey{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32) ^ static_cast<uint32_t>(step >> 32),
                static_cast<uint32_t>(step), rank};
}

SQZ_HD Philox4 philoxGroup(const RngKey& key, uint64_t group) {
  return philox4x32(static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32), key.step, key.rank,
                    key.k0, key.k1);
}

// The 32 random bits of global element index i.
SQZ_HD uint32_t philoxElement(const RngKey& key, uint64_t i) {
  Philox4 r = philoxGroup(key, i >> 2);
  return r.v[i & 3];
}

// Stochastic rounding needs few random bits: 16 per element, so one Philox
// call serves eight elements (group i / 8, half-word i % 8) and the CPU
// encoder is not bound by the generator. (r + 1/2) / 2^16 has mean exactly
// 1/2, so rounding stays unbiased to within 2^-16 of a quantization step.
SQZ_HD uint16_t halfWord(const Philox4& r, unsigned h) {
  return static_cast<uint16_t>(r.v[h >> 1] >> ((h & 1u) * 16));
}
SQZ_HD float uniformFrom16(uint16_t r) {
  return static_cast<float>(r) * 1.52587890625e-05f + 7.62939453125e-06f;  // (r + 0.5) * 2^-16, exact
}

}  // namespace sqz
