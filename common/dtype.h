// Facts about sqzDataType_t and sqzRedOp_t used on every layer.
#pragma once

#include <cstddef>

#include "sqz.h"

namespace sqz {

inline bool validDataType(int t) { return t >= 0 && t < sqzNumTypes; }
inline bool validRedOp(int op) { return op >= 0 && op < sqzNumOps; }

inline size_t dataTypeSize(sqzDataType_t t) {
  switch (t) {
    case sqzInt8: case sqzUint8: return 1;
    case sqzFloat16: case sqzBfloat16: return 2;
    case sqzInt32: case sqzUint32: case sqzFloat32: return 4;
    case sqzInt64: case sqzUint64: case sqzFloat64: return 8;
    default: return 0;
  }
}

inline bool isFloatType(sqzDataType_t t) {
  return t == sqzFloat16 || t == sqzBfloat16 || t == sqzFloat32 || t == sqzFloat64;
}

// 16-bit floats are reduced in fp32; everything else in its own type.
inline bool isHalfType(sqzDataType_t t) { return t == sqzFloat16 || t == sqzBfloat16; }

inline const char* dataTypeName(sqzDataType_t t) {
  static const char* names[] = {"int8",  "uint8",   "int32",   "uint32",  "int64",
                                "uint64", "half",   "float",   "double",  "bfloat16"};
  return validDataType(t) ? names[t] : "invalid";
}

inline const char* redOpName(sqzRedOp_t op) {
  static const char* names[] = {"sum", "prod", "max", "min", "avg"};
  return validRedOp(op) ? names[op] : "invalid";
}

}  // namespace sqz
