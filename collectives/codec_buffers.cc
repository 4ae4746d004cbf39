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

namespace {

// Exponent all ones <=> NaN or Inf. Blocks of a fixed length, so that the
// inner OR-reduction vectorizes at -O2 too (GCC's "very cheap" cost model
// there vectorizes only loops whose trip count is a known multiple of the
// vector length; the plain loop ran one element at a time).
template <class Bits, Bits kExponent>
bool anyExponentAllOnes(const Bits* u, size_t n) {
  constexpr size_t kBlock = 64;
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    Bits bad = 0;
    for (size_t j = 0; j < kBlock; ++j) bad |= static_cast<Bits>((u[i + j] & kExponent) == kExponent);
    if (bad) return true;
  }
  Bits bad = 0;
  for (; i < n; ++i) bad |= static_cast<Bits>((u[i] & kExponent) == kExponent);
  return bad != 0;
}

}  // namespace

bool hasNonFinite(const void* in, sqzDataType_t type, size_t n) {
  if (type == sqzFloat32) return anyExponentAllOnes<uint32_t, 0x7f800000u>(static_cast<const uint32_t*>(in), n);
  const uint16_t* h = static_cast<const uint16_t*>(in);
  return type == sqzFloat16 ? anyExponentAllOnes<uint16_t, 0x7c00u>(h, n) : anyExponentAllOnes<uint16_t, 0x7f80u>(h, n);
}

}  // namespace sqz
