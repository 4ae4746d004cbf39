#include "harness/reference.h"

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <type_traits>

#include "common/dtype.h"
#include "kernels/half.h"

namespace sqz::test {
namespace {

template <typename T>
T load(const void* buf, size_t i) {
  T v;
  std::memcpy(&v, static_cast<const unsigned char*>(buf) + i * sizeof(T), sizeof(T));
  return v;
}

template <typename T>
void store(std::vector<unsigned char>& out, size_t i, T v) {
  std::memcpy(out.data() + i * sizeof(T), &v, sizeof(T));
}

// Integer reference with the library's wrap-around semantics.
template <typename T>
std::string checkInt(const std::vector<std::vector<unsigned char>>& in, const void* result, sqzRedOp_t op,
                     size_t count) {
  using U = std::make_unsigned_t<T>;
  using W = std::conditional_t<(sizeof(U) < sizeof(unsigned)), unsigned, U>;
  for (size_t i = 0; i < count; ++i) {
    U acc = static_cast<U>(load<T>(in[0].data(), i));
    T best = load<T>(in[0].data(), i);
    for (size_t r = 1; r < in.size(); ++r) {
      T v = load<T>(in[r].data(), i);
      if (op == sqzSum || op == sqzAvg) acc = static_cast<U>(acc + static_cast<U>(v));
      if (op == sqzProd) acc = static_cast<U>(static_cast<W>(acc) * static_cast<W>(static_cast<U>(v)));
      if (op == sqzMax) best = v > best ? v : best;
      if (op == sqzMin) best = v < best ? v : best;
    }
    T expect = (op == sqzMax || op == sqzMin) ? best : static_cast<T>(acc);
    if (op == sqzAvg) {
      using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
      expect = static_cast<T>(static_cast<Wide>(expect) / static_cast<Wide>(in.size()));
    }
    T got = load<T>(result, i);
    if (got != expect) {
      std::ostringstream s;
      s << "element " << i << ": got " << +got << ", expected " << +expect;
      return s.str();
    }
  }
  return "";
}

}  // namespace

double unitRoundoff(sqzDataType_t t) {
  switch (t) {
    case sqzFloat16: return std::ldexp(1.0, -11);
    case sqzBfloat16: return std::ldexp(1.0, -8);
    case sqzFloat32: return std::ldexp(1.0, -24);
    default: return std::ldexp(1.0, -53);
  }
}

uint64_t fnv1a(const void* data, size_t bytes) {
  uint64_t h = 1469598103934665603ull;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::vector<float> rankGradient(int rank, size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed * 131 + rank);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(count);
  for (auto& x : g) x = normal(rng) * (1.0f + static_cast<float>(rank));
  return g;
}

double elementAsDouble(const void* buf, sqzDataType_t type, size_t i) {
  switch (type) {
    case sqzInt8: return load<int8_t>(buf, i);
    case sqzUint8: return load<uint8_t>(buf, i);
    case sqzInt32: return load<int32_t>(buf, i);
    case sqzUint32: return load<uint32_t>(buf, i);
    case sqzInt64: return static_cast<double>(load<int64_t>(buf, i));
    case sqzUint64: return static_cast<double>(load<uint64_t>(buf, i));
    case sqzFloat16: return fp16ToFloat(load<uint16_t>(buf, i));
    case sqzBfloat16: return bf16ToFloat(load<uint16_t>(buf, i));
    case sqzFloat32: return load<float>(buf, i);
    case sqzFloat64: return load<double>(buf, i);
    default: return 0;
  }
}

std::vector<unsigned char> makeInput(sqzDataType_t type, sqzRedOp_t op, int rank, size_t count, uint64_t seed) {
  std::vector<unsigned char> out(count * dataTypeSize(type));
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(rank) * 7919u + static_cast<uint64_t>(type) * 31u +
                      static_cast<uint64_t>(op));
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  for (size_t i = 0; i < count; ++i) {
    double x = op == sqzProd ? 1.0 + 0.25 * unit(rng) : 100.0 * unit(rng);
    int64_t k = static_cast<int64_t>(rng() % 200) - 100;  // [-100, 100)
    if (op == sqzProd) k = static_cast<int64_t>(rng() % 3) + 1;  // small factors
    switch (type) {
      case sqzInt8: store<int8_t>(out, i, static_cast<int8_t>(k)); break;
      case sqzUint8: store<uint8_t>(out, i, static_cast<uint8_t>(rng() % 256)); break;
      case sqzInt32: store<int32_t>(out, i, static_cast<int32_t>(k * 1000003)); break;
      case sqzUint32: store<uint32_t>(out, i, static_cast<uint32_t>(rng())); break;
      case sqzInt64: store<int64_t>(out, i, static_cast<int64_t>(rng())); break;
      case sqzUint64: store<uint64_t>(out, i, rng()); break;
      case sqzFloat16: store<uint16_t>(out, i, floatToFp16(static_cast<float>(x))); break;
      case sqzBfloat16: store<uint16_t>(out, i, floatToBf16(static_cast<float>(x))); break;
      case sqzFloat32: store<float>(out, i, static_cast<float>(x)); break;
      case sqzFloat64: store<double>(out, i, x); break;
      default: break;
    }
  }
  return out;
}

std::string checkReduction(const std::vector<std::vector<unsigned char>>& in, const void* result,
                           sqzDataType_t type, sqzRedOp_t op, size_t count) {
  switch (type) {
    case sqzInt8: return checkInt<int8_t>(in, result, op, count);
    case sqzUint8: return checkInt<uint8_t>(in, result, op, count);
    case sqzInt32: return checkInt<int32_t>(in, result, op, count);
    case sqzUint32: return checkInt<uint32_t>(in, result, op, count);
    case sqzInt64: return checkInt<int64_t>(in, result, op, count);
    case sqzUint64: return checkInt<uint64_t>(in, result, op, count);
    default: break;
  }
  // Floats: exact fp64 reference; a sum of n terms accumulated in fp32 (or
  // fp64) is within (n-1)*u*sum|x| of it, and a final cast to a 16-bit type
  // adds one rounding of the result.
  const size_t n = in.size();
  const double uAcc = type == sqzFloat64 ? unitRoundoff(sqzFloat64) : unitRoundoff(sqzFloat32);
  const double uOut = unitRoundoff(type);
  for (size_t i = 0; i < count; ++i) {
    // long double (64-bit mantissa on x86) keeps the reference's own
    // rounding far below the bound even for fp64 inputs.
    long double acc = 0, mag = 0;
    if (op == sqzProd) acc = 1;
    if (op == sqzMax || op == sqzMin) acc = elementAsDouble(in[0].data(), type, i);
    for (size_t r = 0; r < n; ++r) {
      long double v = elementAsDouble(in[r].data(), type, i);
      if (op == sqzSum || op == sqzAvg) acc += v;
      if (op == sqzProd) acc *= v;
      if (op == sqzMax) acc = std::max(acc, v);
      if (op == sqzMin) acc = std::min(acc, v);
      mag += std::fabs(v);
    }
    // Compared in long double: the reference rounded to fp64 would itself be
    // up to half an fp64 ulp off, which the bound does not hold.
    if (op == sqzAvg) acc /= static_cast<long double>(n);
    const double ref = static_cast<double>(acc);
    double bound = 0;
    if (op == sqzSum || op == sqzAvg) {
      bound = (n - 1) * uAcc * static_cast<double>(mag) + std::ldexp(std::fabs(ref), -60);
      if (op == sqzAvg) bound = bound / n + uAcc * std::fabs(ref);
    } else if (op == sqzProd) {
      bound = 2.0 * n * uAcc * std::fabs(ref) + std::ldexp(std::fabs(ref), -60);
    }
    // (fp16's subnormals are spaced 2^-24 apart: half of that absolute.)
    if (uOut > uAcc) bound += uOut * std::fabs(ref) * 1.0000001 + (type == sqzFloat16 ? std::ldexp(1.0, -25) : 0.0);
    double got = elementAsDouble(result, type, i);
    if (!(std::fabs(static_cast<long double>(got) - acc) <= bound)) {
      std::ostringstream s;
      s.precision(17);
      s << "element " << i << ": got " << got << ", expected " << ref << " +- " << bound << " (" << dataTypeName(type)
        << " " << redOpName(op) << ", " << n << " ranks)";
      return s.str();
    }
  }
  return "";
}

}  // namespace sqz::test
