#include "src/memory_kind.h"

#ifdef SQZ_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace sqz {

bool cudaAvailable() {
#ifdef SQZ_HAVE_CUDA
  static const bool available = [] {
    int n = 0;
    bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    cudaGetLastError();  // clear the sticky "no driver" error
    return ok;
  }();
  return available;
#else
  return false;
#endif
}

MemoryKind classifyPointer(const void* ptr) {
#ifdef SQZ_HAVE_CUDA
  if (!cudaAvailable()) return MemoryKind::kHost;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return MemoryKind::kHost;
  }
  if (attr.type == cudaMemoryTypeDevice) return MemoryKind::kDevice;
  if (attr.type == cudaMemoryTypeManaged) return MemoryKind::kManaged;
  return MemoryKind::kHost;  // unregistered or pinned host memory
#else
  (void)ptr;
  return MemoryKind::kHost;
#endif
}

}  // namespace sqz
