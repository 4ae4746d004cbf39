// A kernel that keeps a stream busy for a while (clock64 spin), so a test
// can tell whether the host returned before the GPU got to its work.
#pragma once

#include <cuda_runtime.h>

namespace sqz::test {

// Enqueues a one-thread kernel on `stream` that spins for about `seconds`.
cudaError_t launchSpin(cudaStream_t stream, double seconds);
// Loads the spin kernel now, not at its first launch (lazy loading).
cudaError_t loadSpinKernel();

}  // namespace sqz::test
