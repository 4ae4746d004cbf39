// The checks a decoder makes of a payload's sections, written once for the
// CPU and the GPU decoders: both check every block scale, value scale and
// index of a payload before they write a single element (a bad one rejects
// the payload with the output untouched).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/half.h"

namespace sqz {

SQZ_HD bool finiteFloat(float x) { return (floatBits(x) & 0x7f800000u) != 0x7f800000u; }

// A quantized block's {lo, delta}: finite, delta not negative.
SQZ_HD bool blockParamsOk(float lo, float delta) { return finiteFloat(lo) && finiteFloat(delta) && !(delta < 0.0f); }

// A scaled-sign block's scale: finite, not negative.
SQZ_HD bool signScaleOk(float scale) { return finiteFloat(scale) && !(scale < 0.0f); }

// The int8 value scale of a sparse payload: finite, not negative.
SQZ_HD bool valueScaleOk(float scale) { return finiteFloat(scale) && !(scale < 0.0f); }

// Top-K index j of `idx`: below count, and strictly above index j - 1, so
// that no element is written twice (no duplicates).
SQZ_HD bool sparseIndexOk(const uint32_t* idx, size_t j, uint64_t count) {
  return idx[j] < count && (j == 0 || idx[j - 1] < idx[j]);
}

}  // namespace sqz
