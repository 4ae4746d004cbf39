#include "src/mpi_interposer/call_route.h"

namespace sqz::mpi {

const char* routeName(Route r) {
  switch (r) {
    case Route::kServe: return "served";
    case Route::kDisabled: return "disabled";
    case Route::kType: return "type";
    case Route::kOp: return "op";
    case Route::kSmall: return "small";
    case Route::kArguments: return "arguments";
    case Route::kNotIntra: return "intercomm";
    case Route::kSingleRank: return "single-rank";
    case Route::kDeviceMemory: return "device-memory";
    case Route::kUnservable: return "unservable";
    case Route::kNonblocking: return "nonblocking";
    case Route::kNotInitialized: return "not-initialized";
    case Route::kBadConfig: return "bad-config";
    case Route::kCount: break;
  }
  return "?";
}

}  // namespace sqz::mpi
