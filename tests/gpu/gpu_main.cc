// main() of sqz_gpu_tests: without a CUDA device the whole binary is
// skipped (exit code 77, ctest's SKIP_RETURN_CODE), so that ctest reports
// the GPU tests as skipped rather than silently absent or failed.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpu/gpu_check.h"

int main(int argc, char** argv) {
  sqz::test::preferEagerModuleLoading();
  std::string why;
  if (!sqz::test::cudaDevicePresent(&why)) {
    std::printf("no CUDA device: skipping (%s)\n", why.c_str());
    return sqz::test::kSkipCode;
  }
  if (cudaError_t e = sqz::test::loadTestKernels(); e != cudaSuccess) {
    std::printf("loading the test kernels: %s\n", cudaGetErrorString(e));
    return 1;
  }
  // Ranks share device 0 through host staging unless a test asks for NCCL;
  // every size compresses (the tests sweep buffers below the 64 KiB default).
  setenv("SQZ_TRANSPORT", "ucx", 1);
  setenv("SQZ_MIN_BYTES", "0", 1);
  setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 1);
  // A rank that failed stops taking part: its peers give up after a minute,
  // not the default five.
  setenv("SQZ_TIMEOUT", "60", 0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
