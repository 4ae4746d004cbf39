// Shared by the GPU tests (threads as ranks) and the GPU rank process
// (processes under mpirun): device memory, the codec specs every test
// sweeps, and the check of one device allreduce against the fp64 reference
// with the error bound of the codec that ran (as sqzGetCallInfo reports it).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sqz.h"

namespace sqz::test {

// Exit code meaning "skipped" (ctest's SKIP_RETURN_CODE).
constexpr int kSkipCode = 77;

// True when the CUDA runtime reports at least one device; else *why says
// what it reported.
bool cudaDevicePresent(std::string* why);

// For a GPU test binary's main(), before any CUDA call: eager module
// loading (unless the environment chose), a second guard next to sqz's own
// preloading of its kernels (src/device/device_path.h), and the tests' own
// kernels loaded before any rank's wait kernel can spin.
void preferEagerModuleLoading();
cudaError_t loadTestKernels();

// Device bytes from the stream-ordered allocator on `stream`, freed on it
// at destruction (the stream must outlive the buffer). Never cudaMalloc and
// cudaFree: with ranks as threads of one process, another rank's staging
// wait kernel may be spinning for this rank's next call, and cudaFree
// waits for the device to go idle.
class DeviceBuffer {
 public:
  DeviceBuffer(size_t bytes, cudaStream_t stream);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  // Throws (std::runtime_error) when cudaMalloc failed.
  void upload(const void* host, size_t bytes, cudaStream_t stream);
  void download(void* host, size_t bytes, cudaStream_t stream) const;

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

// Every codec spec the device path must accept.
const std::vector<std::string>& allSpecs();

// "" when info describes the plan the device path promises for this call:
// lossy codecs run "gather" (random-K "randk"), exact calls "ring", plan
// "@<algorithm>:<codec>", and the seconds fields are 0.
std::string checkDevicePlan(const sqzCallInfo& info);

// "" when `result` (count elements of `type`, host copy) is the reduction of
// inputs[0..n) within the bound of the codec and plan in info (first call on
// a fresh error-feedback state; lossy calls through harness/lossy_check.h),
// else why not.
std::string checkDeviceResult(const std::vector<std::vector<unsigned char>>& inputs, const void* result,
                              sqzDataType_t type, sqzRedOp_t op, size_t count, const sqzCallInfo& info);

}  // namespace sqz::test
