#include "src/mpi_interposer/call_eligibility.h"

#include <cstdint>

#include "src/memory_kind.h"

namespace sqz::mpi {

namespace {

// The predefined floating-point types sqz reduces. Fortran's MPI_REAL and
// MPI_DOUBLE_PRECISION are left out: Open MPI's Fortran bindings call
// PMPI_Allreduce and never reach this library (see the README).
bool sqzTypeOf(MPI_Datatype t, sqzDataType_t* out) {
  if (t == MPI_FLOAT) *out = sqzFloat32;
  else if (t == MPI_DOUBLE) *out = sqzFloat64;
#ifdef MPIX_C_FLOAT16
  else if (t == MPIX_C_FLOAT16) *out = sqzFloat16;
#endif
  else return false;
  return true;
}

size_t elementBytes(sqzDataType_t t) {
  switch (t) {
    case sqzFloat16: return 2;
    case sqzFloat64: return 8;
    default: return 4;
  }
}

bool overlap(const void* a, const void* b, size_t bytes) {
  const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + bytes && y < x + bytes;
}

bool hostMemory(const void* p) { return !p || classifyPointer(p) == MemoryKind::kHost; }

}  // namespace

Route classifyCall(const AllreduceCall& call, const InterposerConfig& config, sqzDataType_t* type) {
  if (!config.serving()) return Route::kDisabled;
  if (!config.error.empty()) return Route::kBadConfig;
  if (call.count < 0 || call.comm == MPI_COMM_NULL) return Route::kArguments;
  if (!sqzTypeOf(call.type, type)) return Route::kType;
  if (call.op != MPI_SUM) return Route::kOp;
  const size_t bytes = static_cast<size_t>(call.count) * elementBytes(*type);
  if (bytes == 0 || bytes < config.minBytes) return Route::kSmall;
  const bool inPlace = call.send == MPI_IN_PLACE;
  if (!call.recv || (!inPlace && (!call.send || overlap(call.send, call.recv, bytes)))) return Route::kArguments;
  int initialized = 0, finalized = 0;
  PMPI_Initialized(&initialized);
  PMPI_Finalized(&finalized);
  if (!initialized || finalized) return Route::kNotInitialized;
  if (!hostMemory(call.recv) || (!inPlace && !hostMemory(call.send))) return Route::kDeviceMemory;
  return Route::kServe;
}

}  // namespace sqz::mpi
