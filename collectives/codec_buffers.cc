#include "collectives/codec_buffers.h"

#include <cstdint>
#include <cstring>

#include "common/dtype.h"
#include "kernels/half.h"

namespace sqz {

void loadFloats(const void* in, sqzDataType_t type, size_t offset, size_t n, float* out) {
  if (n == 0) return;  // empty chunks (count < ranks) may come with null pointers
  if (type == sqzFloat32) {
    std::memcpy(out, static_cast<const float*>(in) + offset, n * sizeof(float));
    return;
  }
  const uint16_t* h = static_cast<const uint16_t*>(in) + offset;
  if (type == sqzFloat16) for (size_t i = 0; i < n; ++i) out[i] = fp16ToFloat(h[i]);
  else for (size_t i = 0; i < n; ++i) out[i] = bf16ToFloat(h[i]);
}

void storeFloats(const float* in, sqzDataType_t type, size_t offset, size_t n, void* out) {
  if (n == 0) return;
  if (type == sqzFloat32) {
    float* o = static_cast<float*>(out) + offset;
    if (o != in) std::memmove(o, in, n * sizeof(float));
    return;
  }
  uint16_t* h = static_cast<uint16_t*>(out) + offset;
  if (type == sqzFloat16) for (size_t i = 0; i < n; ++i) h[i] = floatToFp16(in[i]);
  else for (size_t i = 0; i < n; ++i) h[i] = floatToBf16(in[i]);
}

const void* elementPtr(const void* base, sqzDataType_t type, size_t offset) {
  return static_cast<const unsigned char*>(base) + offset * dataTypeSize(type);
}

EncodeArgs encodeArgs(const CompressedArgs& a, const void* input, sqzDataType_t type, float* residual, size_t offset,
                      size_t count, int rank, uint64_t step) {
  EncodeArgs e;
  e.input = input;
  e.dtype = type;
  e.count = count;
  e.residual = residual;
  e.seed = a.seed;
  e.step = step;
  e.rank = static_cast<uint32_t>(rank);
  e.chunkOffset = offset;
  return e;
}

EncodeArgs chunkEncodeArgs(const CompressedArgs& a, int rank, size_t offset, size_t count, uint64_t step) {
  return encodeArgs(a, elementPtr(a.base.send, a.base.type, offset), a.base.type,
                    a.residual ? a.residual + offset : nullptr, offset, count, rank, step);
}

bool hasNonFinite(const void* in, sqzDataType_t type, size_t n) {
  // Exponent all ones <=> NaN or Inf; an OR-reduction the compiler vectorizes.
  if (type == sqzFloat32) {
    const uint32_t* u = static_cast<const uint32_t*>(in);
    uint32_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad |= ((u[i] & 0x7f800000u) == 0x7f800000u);
    return bad != 0;
  }
  const uint16_t* h = static_cast<const uint16_t*>(in);
  const uint16_t mask = type == sqzFloat16 ? 0x7c00u : 0x7f80u;
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad |= ((h[i] & mask) == mask);
  return bad != 0;
}

}  // namespace sqz
