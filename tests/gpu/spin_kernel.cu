#include "gpu/spin_kernel.h"

namespace sqz::test {
namespace {

__global__ void spin(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

}  // namespace

cudaError_t loadSpinKernel() {
  cudaFuncAttributes attributes{};
  return cudaFuncGetAttributes(&attributes, spin);
}

cudaError_t launchSpin(cudaStream_t stream, double seconds) {
  int device = 0, kiloHertz = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  // The SM clock in kHz; 2 GHz (above an H100's boost clock, so the spin
  // only gets longer) when the attribute is not reported.
  if (cudaDeviceGetAttribute(&kiloHertz, cudaDevAttrClockRate, device) != cudaSuccess || kiloHertz <= 0)
    kiloHertz = 2000000;
  spin<<<1, 1, 0, stream>>>(static_cast<long long>(seconds * kiloHertz * 1e3));
  return cudaGetLastError();
}

}  // namespace sqz::test
