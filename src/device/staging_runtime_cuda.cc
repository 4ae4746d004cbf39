#include <cuda_runtime_api.h>

#include "kernels/cuda_device_ops.h"
#include "src/device/staging_runtime.h"

namespace sqz {

static_assert(StagingRuntime::kSuccess == cudaSuccess && StagingRuntime::kNotReady == cudaErrorNotReady,
              "StagingRuntime's codes are CUDA's");

const StagingRuntime& cudaStagingRuntime() {
  static const StagingRuntime rt = [] {
    StagingRuntime r;
    r.setDevice = [](int device) -> int { return cudaSetDevice(device); };
    r.hostAlloc = [](void** host, size_t bytes, bool mapped) -> int {
      return cudaHostAlloc(host, bytes, mapped ? cudaHostAllocMapped : cudaHostAllocDefault);
    };
    r.hostDevicePointer = [](void** device, void* host) -> int { return cudaHostGetDevicePointer(device, host, 0); };
    r.freeHost = [](void* host) -> int { return cudaFreeHost(host); };
    r.eventCreate = [](void** event) -> int {
      return cudaEventCreateWithFlags(reinterpret_cast<cudaEvent_t*>(event), cudaEventDisableTiming);
    };
    r.eventRecord = [](void* event, void* stream) -> int {
      return cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream));
    };
    r.eventQuery = [](void* event) -> int { return cudaEventQuery(static_cast<cudaEvent_t>(event)); };
    r.eventSynchronize = [](void* event) -> int { return cudaEventSynchronize(static_cast<cudaEvent_t>(event)); };
    r.eventDestroy = [](void* event) -> int { return cudaEventDestroy(static_cast<cudaEvent_t>(event)); };
    r.streamIsCapturing = [](void* stream, bool* capturing) -> int {
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      cudaError_t e = cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status);
      *capturing = status != cudaStreamCaptureStatusNone;
      return e;
    };
    r.launchWaitFlag = cudaWaitHostFlag;
    r.clearLastError = []() -> int { return cudaGetLastError(); };
    r.errorString = [](int error) { return cudaGetErrorString(static_cast<cudaError_t>(error)); };
    return r;
  }();
  return rt;
}

}  // namespace sqz
