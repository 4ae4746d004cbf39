// splitmix64 (Steele, Lea, Flood 2014): a fast, well-mixed 64-bit hash of a
// counter, for test data and benchmark inputs drawn by index (not for the
// codecs' stochastic rounding, which has its own generator).
#pragma once

#include <cstdint>

// Host and device: sign:rot's rotation keys hash with it on both
// (kernels/sign_rotation_math.h).
#if defined(__CUDACC__)
#define SQZ_SPLITMIX_HD __host__ __device__
#else
#define SQZ_SPLITMIX_HD
#endif

namespace sqz {

// The value splitmix64 draws at state z (it adds its increment first).
inline SQZ_SPLITMIX_HD uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The next draw of a generator whose state is `s`.
inline uint64_t splitmix64Next(uint64_t& s) {
  const uint64_t z = splitmix64(s);
  s += 0x9e3779b97f4a7c15ull;
  return z;
}

}  // namespace sqz
