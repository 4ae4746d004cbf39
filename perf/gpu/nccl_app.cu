// nccl_app: a small NCCL program that knows nothing about sqz (plain NCCL
// and CUDA, as nccl-tests or a framework would call them), for showing the
// LD_PRELOAD interposer: run it as is, then under
//   LD_PRELOAD=libsqz_nccl.so SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO nccl_app --tolerance 0.3
// and the float allreduces are served by sqz while everything else (the
// small and integer allreduces, the broadcast, communicator setup) goes to
// NCCL. One rank on GPU 0.
//   nccl_app [--mib 16] [--iters 5] [--tolerance REL] [--init all|rank]
// --tolerance: the largest error of a float allreduce accepted, relative to
// the largest |expected| (0, the default: bitwise exact, as NCCL gives).
#include <cuda_runtime.h>
#include <nccl.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CUDA_CHECK(call)                                                                             \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "nccl_app: %s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

#define NCCL_CHECK(call)                                                                             \
  do {                                                                                               \
    ncclResult_t r_ = (call);                                                                        \
    if (r_ != ncclSuccess) {                                                                         \
      std::fprintf(stderr, "nccl_app: %s:%d %s: %s\n", __FILE__, __LINE__, #call, ncclGetErrorString(r_)); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

namespace {

__global__ void fillFloat(float* x, size_t n, float scale) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    x[i] = scale * sinf(0.001f * static_cast<float>(i % 100000)) + 0.25f * scale * cosf(static_cast<float>(i % 7));
}

__global__ void fillInt(int* x, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    x[i] = static_cast<int>(i % 1000) - 500;
}

// Largest |got - want| relative to the largest |want|.
double relError(const std::vector<float>& got, const std::vector<float>& want) {
  double maxErr = 0, maxRef = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    maxErr = std::fmax(maxErr, std::fabs(static_cast<double>(got[i]) - want[i]));
    maxRef = std::fmax(maxRef, std::fabs(static_cast<double>(want[i])));
  }
  return maxRef > 0 ? maxErr / maxRef : maxErr;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 16;
  int iters = 5;
  double tolerance = 0;
  bool initAll = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) mib = std::strtoul(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--tolerance")) tolerance = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--init")) initAll = !std::strcmp(argv[i + 1], "all");
    else {
      std::fprintf(stderr, "usage: %s [--mib 16] [--iters 5] [--tolerance REL] [--init all|rank]\n", argv[0]);
      return 2;
    }
  }
  int version = 0;
  NCCL_CHECK(ncclGetVersion(&version));
  CUDA_CHECK(cudaSetDevice(0));
  ncclComm_t comm;
  if (initAll) {
    int devices[1] = {0};
    NCCL_CHECK(ncclCommInitAll(&comm, 1, devices));
  } else {
    ncclUniqueId id;
    NCCL_CHECK(ncclGetUniqueId(&id));
    NCCL_CHECK(ncclCommInitRank(&comm, 1, id, 0));
  }
  std::printf("nccl_app: NCCL %d, 1 rank on GPU 0 (%s)\n", version, initAll ? "ncclCommInitAll" : "ncclCommInitRank");
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const size_t count = mib * (1 << 20) / sizeof(float);
  float *send, *recv;
  CUDA_CHECK(cudaMalloc(&send, count * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&recv, count * sizeof(float)));
  fillFloat<<<1024, 256, 0, stream>>>(send, count, 1.0f);
  CUDA_CHECK(cudaGetLastError());
  std::vector<float> want(count), got(count);
  CUDA_CHECK(cudaMemcpyAsync(want.data(), send, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  int failures = 0;
  auto report = [&](const char* what, double err) {
    bool ok = err <= tolerance;
    failures += !ok;
    std::printf("nccl_app: %-44s max rel error %.3e %s\n", what, err, ok ? "ok" : "FAILED");
  };

  // The large float32 allreduces (what the interposer serves): one rank, so
  // the sum and the average are the input itself.
  for (int it = 0; it < iters; ++it) {
    CUDA_CHECK(cudaMemsetAsync(recv, 0, count * sizeof(float), stream));
    NCCL_CHECK(ncclAllReduce(send, recv, count, ncclFloat32, ncclSum, comm, stream));
    CUDA_CHECK(cudaMemcpyAsync(got.data(), recv, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    char what[64];
    std::snprintf(what, sizeof what, "allreduce float32 sum %zu MiB #%d", mib, it + 1);
    report(what, relError(got, want));
  }
  NCCL_CHECK(ncclAllReduce(send, recv, count, ncclFloat32, ncclAvg, comm, stream));
  CUDA_CHECK(cudaMemcpyAsync(got.data(), recv, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  report("allreduce float32 avg", relError(got, want));

  // Inside an NCCL group, as PyTorch issues its collectives (AutoNcclGroup,
  // coalesced buckets): the interposer serves it at ncclGroupEnd.
  CUDA_CHECK(cudaMemsetAsync(recv, 0, count * sizeof(float), stream));
  NCCL_CHECK(ncclGroupStart());
  NCCL_CHECK(ncclAllReduce(send, recv, count, ncclFloat32, ncclSum, comm, stream));
  NCCL_CHECK(ncclGroupEnd());
  CUDA_CHECK(cudaMemcpyAsync(got.data(), recv, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  report("allreduce float32 sum in an NCCL group", relError(got, want));

  // In place, a small float buffer (below SQZ_MIN_BYTES), and integers:
  // exact whoever serves them.
  const size_t small = 1024;
  std::vector<float> smallWant(want.begin(), want.begin() + small), smallGot(small);
  CUDA_CHECK(cudaMemcpyAsync(recv, send, small * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  NCCL_CHECK(ncclAllReduce(recv, recv, small, ncclFloat32, ncclSum, comm, stream));
  CUDA_CHECK(cudaMemcpyAsync(smallGot.data(), recv, small * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  double smallErr = relError(smallGot, smallWant);
  failures += smallErr != 0;
  std::printf("nccl_app: %-44s max rel error %.3e %s\n", "allreduce float32 sum 4 KiB (in place)", smallErr,
              smallErr == 0 ? "ok" : "FAILED");
  int* ints;
  const size_t intCount = 1 << 16;
  CUDA_CHECK(cudaMalloc(&ints, intCount * sizeof(int)));
  fillInt<<<64, 256, 0, stream>>>(ints, intCount);
  NCCL_CHECK(ncclAllReduce(ints, ints, intCount, ncclInt32, ncclSum, comm, stream));
  std::vector<int> intGot(intCount);
  CUDA_CHECK(cudaMemcpyAsync(intGot.data(), ints, intCount * sizeof(int), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  size_t intWrong = 0;
  for (size_t i = 0; i < intCount; ++i) intWrong += intGot[i] != static_cast<int>(i % 1000) - 500;
  failures += intWrong != 0;
  std::printf("nccl_app: %-44s %zu wrong %s\n", "allreduce int32 sum 256 KiB", intWrong, intWrong ? "FAILED" : "ok");

  // A broadcast from rank 0 (never interposed).
  CUDA_CHECK(cudaMemsetAsync(recv, 0, count * sizeof(float), stream));
  NCCL_CHECK(ncclBroadcast(send, recv, count, ncclFloat32, 0, comm, stream));
  CUDA_CHECK(cudaMemcpyAsync(got.data(), recv, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  double bcastErr = relError(got, want);
  failures += bcastErr != 0;
  std::printf("nccl_app: %-44s max rel error %.3e %s\n", "broadcast float32 16 MiB", bcastErr,
              bcastErr == 0 ? "ok" : "FAILED");

  ncclResult_t asyncError = ncclSuccess;
  NCCL_CHECK(ncclCommGetAsyncError(comm, &asyncError));
  failures += asyncError != ncclSuccess;
  CUDA_CHECK(cudaFree(ints));
  CUDA_CHECK(cudaFree(send));
  CUDA_CHECK(cudaFree(recv));
  NCCL_CHECK(ncclCommDestroy(comm));
  CUDA_CHECK(cudaStreamDestroy(stream));
  std::printf("nccl_app: %s (async error: %s)\n", failures ? "FAILED" : "OK", ncclGetErrorString(asyncError));
  return failures ? 1 : 0;
}
