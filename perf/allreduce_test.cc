#include "perf/allreduce_test.h"

#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/half.h"

namespace {

// Small integers (|v| <= 4) so every sum, product and average is exact in
// every type, which lets -c 1 demand bitwise equality.
int valueAt(size_t i, int rank, sqzRedOp_t op) {
  if (op == sqzProd) return static_cast<int>((i + rank) % 3 == 0 ? 2 : 1) ;
  return static_cast<int>((i * 7 + rank * 3) % 9) - 4;
}

double expected(size_t i, sqzRedOp_t op, int nranks, bool isUnsigned) {
  double acc = op == sqzProd ? 1 : 0;
  double best = 0;
  for (int r = 0; r < nranks; ++r) {
    double v = valueAt(i, r, op);
    if (isUnsigned && v < 0) v = 0;
    if (r == 0) best = v;
    if (op == sqzSum || op == sqzAvg) acc += v;
    if (op == sqzProd) acc *= v;
    if (op == sqzMax) best = std::max(best, v);
    if (op == sqzMin) best = std::min(best, v);
  }
  if (op == sqzMax || op == sqzMin) return best;
  if (op == sqzAvg) return std::trunc(acc / nranks * 1e6) / 1e6;  // compared with tolerance below
  return acc;
}

template <typename T>
void put(void* buf, size_t i, double v) { static_cast<T*>(buf)[i] = static_cast<T>(v); }

void store(void* buf, size_t i, sqzDataType_t t, double v) {
  switch (t) {
    case sqzInt8: put<int8_t>(buf, i, v); break;
    case sqzUint8: put<uint8_t>(buf, i, v); break;
    case sqzInt32: put<int32_t>(buf, i, v); break;
    case sqzUint32: put<uint32_t>(buf, i, v); break;
    case sqzInt64: put<int64_t>(buf, i, v); break;
    case sqzUint64: put<uint64_t>(buf, i, v); break;
    case sqzFloat16: static_cast<uint16_t*>(buf)[i] = sqz::floatToFp16(static_cast<float>(v)); break;
    case sqzBfloat16: static_cast<uint16_t*>(buf)[i] = sqz::floatToBf16(static_cast<float>(v)); break;
    case sqzFloat32: put<float>(buf, i, v); break;
    case sqzFloat64: put<double>(buf, i, v); break;
    default: break;
  }
}

double load(const void* buf, size_t i, sqzDataType_t t) {
  switch (t) {
    case sqzInt8: return static_cast<const int8_t*>(buf)[i];
    case sqzUint8: return static_cast<const uint8_t*>(buf)[i];
    case sqzInt32: return static_cast<const int32_t*>(buf)[i];
    case sqzUint32: return static_cast<const uint32_t*>(buf)[i];
    case sqzInt64: return static_cast<double>(static_cast<const int64_t*>(buf)[i]);
    case sqzUint64: return static_cast<double>(static_cast<const uint64_t*>(buf)[i]);
    case sqzFloat16: return sqz::fp16ToFloat(static_cast<const uint16_t*>(buf)[i]);
    case sqzBfloat16: return sqz::bf16ToFloat(static_cast<const uint16_t*>(buf)[i]);
    case sqzFloat32: return static_cast<const float*>(buf)[i];
    case sqzFloat64: return static_cast<const double*>(buf)[i];
    default: return 0;
  }
}

bool isUnsigned(sqzDataType_t t) { return t == sqzUint8 || t == sqzUint32 || t == sqzUint64; }
bool isInteger(sqzDataType_t t) { return t <= sqzUint64; }

// Pseudo-random values in (-1, 1) for compressed runs, a function of (i, rank).
double randomAt(size_t i, int rank) {
  uint64_t z = (static_cast<uint64_t>(i) << 8) ^ static_cast<uint64_t>(rank) ^ 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

void fill(void* send, size_t count, sqzDataType_t t, sqzRedOp_t op, int rank, int, bool lossy) {
  for (size_t i = 0; i < count; ++i) {
    double v = lossy ? randomAt(i, rank) : valueAt(i, rank, op);
    if (isUnsigned(t) && v < 0) v = 0;
    store(send, i, t, v);
  }
}

double expectedValue(size_t i, sqzDataType_t t, sqzRedOp_t op, int nranks, bool lossy) {
  if (!lossy) return expected(i, op, nranks, isUnsigned(t));
  double acc = 0;
  for (int r = 0; r < nranks; ++r) {
    // The value as stored in the buffer's type.
    unsigned char cell[8];
    store(cell, 0, t, randomAt(i, r));
    acc += load(cell, 0, t);
  }
  return op == sqzAvg ? acc / nranks : acc;
}

size_t checkWrong(const void* recv, size_t count, sqzDataType_t t, sqzRedOp_t op, int, int nranks) {
  size_t wrong = 0;
  for (size_t i = 0; i < count; ++i) {
    double e = expected(i, op, nranks, isUnsigned(t));
    double got = load(recv, i, t);
    if (op == sqzAvg) {
      // Integers truncate the average; floats divide once (rounded in 16-bit types).
      double sum = e * nranks;
      double exact = 0;
      for (int r = 0; r < nranks; ++r) { double v = valueAt(i, r, op); exact += (isUnsigned(t) && v < 0) ? 0 : v; }
      (void)sum;
      double want = isInteger(t) ? std::trunc(exact / nranks) : exact / nranks;
      double tol = isInteger(t) ? 0 : std::fabs(want) * (t == sqzBfloat16 ? 1.0 / 128 : t == sqzFloat16 ? 1.0 / 1024 : 1e-6);
      if (std::fabs(got - want) > tol) ++wrong;
    } else if (got != e) {
      ++wrong;
    }
  }
  return wrong;
}

MPI_Datatype mpiType(sqzDataType_t t) {
  switch (t) {
    case sqzInt8: return MPI_INT8_T;
    case sqzUint8: return MPI_UINT8_T;
    case sqzInt32: return MPI_INT32_T;
    case sqzUint32: return MPI_UINT32_T;
    case sqzInt64: return MPI_INT64_T;
    case sqzUint64: return MPI_UINT64_T;
    case sqzFloat32: return MPI_FLOAT;
    case sqzFloat64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;  // no 16-bit floats in MPI
  }
}

void runMpi(const void* send, void* recv, size_t count, sqzDataType_t t, sqzRedOp_t op) {
  MPI_Datatype dt = mpiType(t);
  MPI_Op mop = op == sqzProd ? MPI_PROD : op == sqzMax ? MPI_MAX : op == sqzMin ? MPI_MIN : MPI_SUM;
  if (dt == MPI_DATATYPE_NULL) return;
  MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, static_cast<int>(count), dt, mop, MPI_COMM_WORLD);
}

double busFactor(int n) { return n > 1 ? 2.0 * (n - 1) / n : 0.0; }

}  // namespace

namespace sqz::perf {

CollectiveTest allreduceTest(const char* name, RunFn run) {
  return CollectiveTest{name, busFactor, fill, expectedValue, load, checkWrong, run, runMpi};
}

}  // namespace sqz::perf
