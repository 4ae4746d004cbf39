// hasNonFinite, the NaN/Inf check before a lossy call: one bad value at any
// position (inside a 64-element block, on a block edge, in the tail) of
// every lossy type is found, and the largest finite values are not.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "collectives/codec_buffers.h"

namespace sqz {
namespace {

struct Type {
  sqzDataType_t type;
  size_t bytes;
  uint32_t nan, inf, largestFinite;  // bit patterns
};

const Type kTypes[] = {
    {sqzFloat32, 4, 0x7fc00000u, 0x7f800000u, 0x7f7fffffu},
    {sqzFloat16, 2, 0x7e00u, 0x7c00u, 0x7bffu},
    {sqzBfloat16, 2, 0x7fc0u, 0x7f80u, 0x7f7fu},
};

void put(std::vector<uint8_t>& buf, const Type& t, size_t i, uint32_t bits) {
  if (t.bytes == 4) {
    std::memcpy(buf.data() + 4 * i, &bits, 4);
  } else {
    const uint16_t h = static_cast<uint16_t>(bits);
    std::memcpy(buf.data() + 2 * i, &h, 2);
  }
}

TEST(NonFiniteScan, FindsOneBadValueAnywhere) {
  for (const Type& t : kTypes) {
    for (size_t n : {size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{200}, size_t{4096 + 7}}) {
      std::vector<uint8_t> buf(n * t.bytes, 0);
      for (size_t i = 0; i < n; ++i) put(buf, t, i, t.largestFinite | (i % 2 ? (t.bytes == 4 ? 0x80000000u : 0x8000u) : 0));
      EXPECT_FALSE(hasNonFinite(buf.data(), t.type, n)) << "type " << t.type << " n " << n;
      for (size_t pos : {size_t{0}, size_t{62}, size_t{63}, size_t{64}, n / 2, n - 1}) {
        if (pos >= n) continue;
        for (uint32_t bad : {t.nan, t.inf, t.inf | (t.bytes == 4 ? 0x80000000u : 0x8000u)}) {
          std::vector<uint8_t> b = buf;
          put(b, t, pos, bad);
          EXPECT_TRUE(hasNonFinite(b.data(), t.type, n)) << "type " << t.type << " n " << n << " at " << pos;
          // A scan that stops short of the bad value does not see it.
          if (pos > 0) {
            EXPECT_FALSE(hasNonFinite(b.data(), t.type, pos));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace sqz
