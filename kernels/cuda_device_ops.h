// Small element-wise kernels the device path of the collectives needs around
// the codecs (kernels/cuda_codec.h): widen into fp32 (+ residual), narrow
// back (÷ divisor for averages), the GPU side of a host-staged transfer, and
// the non-finite guard. Asynchronous on `stream` (a cudaStream_t); every
// pointer is device memory unless said otherwise. Without CUDA every call
// throws sqzInvalidUsage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sqz.h"

namespace sqz {

struct GradStats;

// Loads every kernel of kernels/ into the current device's context now.
// Under lazy module loading (the default since CUDA 12.2) a kernel is loaded
// at its first launch, and loading may wait for the device to go idle:
// behind a spinning cudaWaitHostFlag kernel whose release needs this very
// thread (or another rank thread of the process) to go on, that waits until
// SQZ_TIMEOUT. The device path calls this before it launches anything.
void cudaLoadAllKernels();
// The kernels cudaLoadAllKernels loads (tests compare their number with the
// kernels compiled into the library).
std::vector<const void*> cudaAllKernelEntries();

// out[i] = float(in[i]) (+ residual[i] when residual is not null).
void cudaLoadFloats(const void* in, sqzDataType_t type, const float* residual, size_t n, float* out, void* stream);
// out[i] = type(in[i] / divisor) (divisor 1: plain narrowing); out may alias in for fp32.
void cudaStoreFloats(const float* in, size_t n, int divisor, sqzDataType_t type, void* out, void* stream);
// The stream waits until *flag >= target. `flag` is mapped pinned host
// memory (its device alias) that a host thread advances; one block spins,
// sleeping between reads, so the stream's later work starts only then.
void cudaWaitHostFlag(const volatile uint32_t* flag, uint32_t target, void* stream);
// *flagOut = 1.0f when stats->nonFinite > 0, else 0 (for payload-free plans,
// whose flag travels as one more summed value).
void cudaNonFiniteFlag(const GradStats* stats, float* flagOut, void* stream);
// When any of n flags is set (a double at base + r * stride, or a float
// when floatFlags), every element of out (count x type) becomes NaN and the
// residual is cleared: a non-finite gradient on any rank must reach every
// caller as non-finite (as the exact sum would), and must not live on in
// the residual. Otherwise nothing is written.
void cudaNonFiniteGuard(const void* base, size_t stride, int n, bool floatFlags, void* out, sqzDataType_t type,
                        size_t count, float* residual, void* stream);

}  // namespace sqz
