// CUDA runtime errors as sqz errors: a failed call throws (common/error.h's
// fail) with the call's text and CUDA's message, under the given code.
#pragma once

#include <cuda_runtime_api.h>

#include "common/error.h"

#define SQZ_CUDA_CHECK_AS(code, call)                                                      \
  do {                                                                                     \
    cudaError_t err_ = (call);                                                             \
    if (err_ != cudaSuccess) ::sqz::fail(code, "%s: %s", #call, cudaGetErrorString(err_)); \
  } while (0)

// A runtime call on the caller's behalf (memory, streams, events).
#define SQZ_CUDA_OK(call) SQZ_CUDA_CHECK_AS(sqzUnhandledCudaError, call)
// Inside sqz's own kernels' launch sequences: a failure is sqz's bug.
#define SQZ_CUDA_CHECK(call) SQZ_CUDA_CHECK_AS(sqzInternalError, call)
#define SQZ_CUDA_LAUNCHED() SQZ_CUDA_CHECK(cudaGetLastError())
