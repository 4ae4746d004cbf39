#include "collectives/reduce_ops.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/dtype.h"
#include "common/error.h"
#include "kernels/half.h"

namespace sqz {
namespace {

template <typename T>
struct Identity {
  using type = T;
};

template <typename T>
struct Arith {
  // Wrapping arithmetic for integers (signed overflow is undefined in C++).
  using U = typename std::conditional_t<std::is_integral_v<T>, std::make_unsigned<T>, Identity<T>>::type;
  static T add(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    else return a + b;
  }
  static T mul(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      // Promote to at least unsigned int so uint8/uint16 products do not hit int overflow.
      using W = std::conditional_t<(sizeof(U) < sizeof(unsigned)), unsigned, U>;
      return static_cast<T>(static_cast<U>(static_cast<W>(static_cast<U>(a)) * static_cast<W>(static_cast<U>(b))));
    } else {
      return a * b;
    }
  }
  // NaN-propagating max/min for floats.
  static T max(T a, T b) { return (a > b || a != a) ? a : b; }
  static T min(T a, T b) { return (a < b || a != a) ? a : b; }
};

// out[i] = op(a[i], b[i]); reduceInto passes out == a.
template <typename T, typename Op>
void combine(T* out, const T* a, const T* __restrict b, size_t n, Op f) {
  T* __restrict o = out;
  if (out == a) {
    for (size_t i = 0; i < n; ++i) o[i] = f(o[i], b[i]);
  } else {
    const T* __restrict x = a;
    for (size_t i = 0; i < n; ++i) o[i] = f(x[i], b[i]);
  }
}

template <typename T>
void reduceTyped(T* out, const T* a, const T* b, size_t n, sqzRedOp_t op) {
  switch (op) {
    case sqzSum:
    case sqzAvg: combine(out, a, b, n, [](T x, T y) { return Arith<T>::add(x, y); }); break;
    case sqzProd: combine(out, a, b, n, [](T x, T y) { return Arith<T>::mul(x, y); }); break;
    case sqzMax: combine(out, a, b, n, [](T x, T y) { return Arith<T>::max(x, y); }); break;
    case sqzMin: combine(out, a, b, n, [](T x, T y) { return Arith<T>::min(x, y); }); break;
    default: fail(sqzInvalidArgument, "invalid reduction op %d", static_cast<int>(op));
  }
}

template <typename T>
void divideTyped(T* acc, size_t n, int divisor) {
  if constexpr (std::is_integral_v<T>) {
    using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    const Wide d = static_cast<Wide>(divisor);
    for (size_t i = 0; i < n; ++i) acc[i] = static_cast<T>(static_cast<Wide>(acc[i]) / d);
  } else {
    const T d = static_cast<T>(divisor);
    for (size_t i = 0; i < n; ++i) acc[i] = acc[i] / d;
  }
}

}  // namespace

sqzDataType_t accumulationType(sqzDataType_t t) { return isHalfType(t) ? sqzFloat32 : t; }

void reduceTo(void* out, const void* a, const void* b, size_t n, sqzDataType_t t, sqzRedOp_t op) {
  switch (t) {
#define SQZ_REDUCE_CASE(E, T) \
  case E: reduceTyped(static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), n, op); break;
    SQZ_REDUCE_CASE(sqzInt8, int8_t)
    SQZ_REDUCE_CASE(sqzUint8, uint8_t)
    SQZ_REDUCE_CASE(sqzInt32, int32_t)
    SQZ_REDUCE_CASE(sqzUint32, uint32_t)
    SQZ_REDUCE_CASE(sqzInt64, int64_t)
    SQZ_REDUCE_CASE(sqzUint64, uint64_t)
    SQZ_REDUCE_CASE(sqzFloat32, float)
    SQZ_REDUCE_CASE(sqzFloat64, double)
#undef SQZ_REDUCE_CASE
    default: SQZ_CHECK(false, "reduceInto: %s is not an accumulation type", dataTypeName(t));
  }
}

void reduceInto(void* acc, const void* src, size_t n, sqzDataType_t t, sqzRedOp_t op) { reduceTo(acc, acc, src, n, t, op); }

void widen(const void* in, sqzDataType_t t, void* out, size_t n) {
  if (t == sqzFloat16 || t == sqzBfloat16) {
    const uint16_t* h = static_cast<const uint16_t*>(in);
    float* f = static_cast<float*>(out);
    if (t == sqzFloat16) for (size_t i = 0; i < n; ++i) f[i] = fp16ToFloat(h[i]);
    else for (size_t i = 0; i < n; ++i) f[i] = bf16ToFloat(h[i]);
  } else if (in != out) {
    std::memcpy(out, in, n * dataTypeSize(t));
  }
}

void narrow(const void* in, sqzDataType_t t, void* out, size_t n) {
  if (t == sqzFloat16 || t == sqzBfloat16) {
    const float* f = static_cast<const float*>(in);
    uint16_t* h = static_cast<uint16_t*>(out);
    if (t == sqzFloat16) for (size_t i = 0; i < n; ++i) h[i] = floatToFp16(f[i]);
    else for (size_t i = 0; i < n; ++i) h[i] = floatToBf16(f[i]);
  } else if (in != out) {
    std::memcpy(out, in, n * dataTypeSize(t));
  }
}

void divideInPlace(void* acc, sqzDataType_t t, size_t n, int divisor) {
  if (divisor == 1) return;
  switch (t) {
    case sqzInt8: divideTyped(static_cast<int8_t*>(acc), n, divisor); break;
    case sqzUint8: divideTyped(static_cast<uint8_t*>(acc), n, divisor); break;
    case sqzInt32: divideTyped(static_cast<int32_t*>(acc), n, divisor); break;
    case sqzUint32: divideTyped(static_cast<uint32_t*>(acc), n, divisor); break;
    case sqzInt64: divideTyped(static_cast<int64_t*>(acc), n, divisor); break;
    case sqzUint64: divideTyped(static_cast<uint64_t*>(acc), n, divisor); break;
    case sqzFloat32: divideTyped(static_cast<float*>(acc), n, divisor); break;
    case sqzFloat64: divideTyped(static_cast<double*>(acc), n, divisor); break;
    default: SQZ_CHECK(false, "divideInPlace: %s is not an accumulation type", dataTypeName(t));
  }
}

}  // namespace sqz
