// Element-wise reduction for every sqzDataType_t and sqzRedOp_t. 16-bit
// floats are widened to fp32 for accumulation and narrowed once at the end
// (their "accumulation type" is float); other types reduce in place.
// Integer sum and product wrap around (two's complement), as MPI does.
#pragma once

#include <cstddef>

#include "sqz.h"

namespace sqz {

sqzDataType_t accumulationType(sqzDataType_t t);

// acc[i] = op(acc[i], src[i]) over n elements of type accType (sqzAvg
// reduces as a sum; divide once with divideInPlace).
void reduceInto(void* acc, const void* src, size_t n, sqzDataType_t accType, sqzRedOp_t op);
// out[i] = op(a[i], b[i]): reduceInto with the first operand read from `a`
// (out may be a, but not otherwise overlap a or b), so an out-of-place call
// needs no copy of its input first.
void reduceTo(void* out, const void* a, const void* b, size_t n, sqzDataType_t accType, sqzRedOp_t op);

// out[i] = in[i] converted from `type` to accumulationType(type).
void widen(const void* in, sqzDataType_t type, void* out, size_t n);
// out[i] = in[i] converted from accumulationType(type) to `type`.
void narrow(const void* in, sqzDataType_t type, void* out, size_t n);

// acc[i] /= divisor (integer division truncates toward zero).
void divideInPlace(void* acc, sqzDataType_t accType, size_t n, int divisor);

}  // namespace sqz
