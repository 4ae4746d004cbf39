// A kernel that keeps a stream busy for a while (clock64 spin), so a test
// can tell whether the host returned before the GPU got to its work.
#pragma once

#include <cuda_runtime.h>

namespace sqz::test {

// Enqueues a one-thread kernel on `stream` that spins for about `seconds`.
cudaError_t launchSpin(cudaStream_t stream, double seconds);

}  // namespace sqz::test
