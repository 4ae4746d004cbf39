// Small helpers shared by the compressed collectives: element access to the
// user's fp32/fp16/bf16 buffers in fp32.
#pragma once

#include <cstddef>

#include "collectives/compressed_args.h"
#include "kernels/cpu_codec.h"
#include "sqz.h"

namespace sqz {

// out[i] (fp32) = in[offset + i] widened.
void loadFloats(const void* in, sqzDataType_t type, size_t offset, size_t n, float* out);
// out[offset + i] (type) = in[i] narrowed.
void storeFloats(const float* in, sqzDataType_t type, size_t offset, size_t n, void* out);
// Pointer to element `offset` of a typed buffer.
const void* elementPtr(const void* base, sqzDataType_t type, size_t offset);
// The encoder's arguments for elements [offset, offset + count) of a
// compressed call's buffer, read from `input` (of `type`) with `residual`
// (both already at element `offset`; residual may be null), under the
// call's key (its seed) at `step`, as encoded by `rank`. Every encode of
// the collectives builds its arguments here.
EncodeArgs encodeArgs(const CompressedArgs& a, const void* input, sqzDataType_t type, float* residual, size_t offset,
                      size_t count, int rank, uint64_t step);
// The same for the call's own input and residual.
EncodeArgs chunkEncodeArgs(const CompressedArgs& a, int rank, size_t offset, size_t count, uint64_t step);
// True when any element is NaN or infinite.
bool hasNonFinite(const void* in, sqzDataType_t type, size_t n);

}  // namespace sqz
