// The CUDA runtime calls the host-staging engine (staging_engine.h) makes,
// as a table of functions: the real runtime in CUDA builds
// (cudaStagingRuntime(), staging_runtime_cuda.cc), a fake in the CPU tests
// of the engine's locking. Streams and events are opaque handles
// (cudaStream_t, cudaEvent_t); each call returns a cudaError_t value, but
// launchWaitFlag, which throws sqz::Error as the kernel launchers do.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sqz {

struct StagingRuntime {
  static constexpr int kSuccess = 0;     // cudaSuccess
  static constexpr int kNotReady = 600;  // cudaErrorNotReady

  int (*setDevice)(int device) = nullptr;
  // Pinned host memory; mapped: also addressable by the device (see
  // hostDevicePointer). Frees with freeHost.
  int (*hostAlloc)(void** host, size_t bytes, bool mapped) = nullptr;
  int (*hostDevicePointer)(void** device, void* host) = nullptr;
  int (*freeHost)(void* host) = nullptr;
  int (*eventCreate)(void** event) = nullptr;  // without timing
  int (*eventRecord)(void* event, void* stream) = nullptr;
  int (*eventQuery)(void* event) = nullptr;  // kSuccess, kNotReady or an error
  int (*eventSynchronize)(void* event) = nullptr;
  int (*eventDestroy)(void* event) = nullptr;
  int (*streamIsCapturing)(void* stream, bool* capturing) = nullptr;
  // Enqueues on `stream` the kernel that holds it until *deviceFlag >=
  // ticket (kernels/cuda_device_ops.h: cudaWaitHostFlag).
  void (*launchWaitFlag)(const volatile uint32_t* deviceFlag, uint32_t ticket, void* stream) = nullptr;
  int (*clearLastError)() = nullptr;  // cudaGetLastError
  const char* (*errorString)(int error) = nullptr;
};

#ifdef SQZ_HAVE_CUDA
const StagingRuntime& cudaStagingRuntime();
#endif

}  // namespace sqz
