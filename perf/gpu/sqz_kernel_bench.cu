// Times each CUDA codec kernel on one buffer (default 64 Mi fp32 elements)
// against cudaMemcpy device-to-device of the same fp32 bytes, and prints a
// markdown table: time (median of --reps), GB/s of fp32 input, and the
// fraction of copy bandwidth (copy time / kernel time).
//   sqz_kernel_bench [--elements=N] [--reps=R]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_codec.h"
#include "src/codec/codec_spec.h"

namespace {

#define CHECK(x)                                                                    \
  do {                                                                              \
    cudaError_t e_ = (x);                                                           \
    if (e_ != cudaSuccess) {                                                        \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)

int gReps = 20;

// Median milliseconds of fn() over gReps runs (after two warm-ups).
double timeMs(const std::function<void()>& fn) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  fn();
  fn();
  std::vector<float> t;
  for (int r = 0; r < gReps; ++r) {
    CHECK(cudaEventRecord(a));
    fn();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK(cudaGetLastError());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = size_t{64} << 20;
  for (int i = 1; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--elements=", 11)) n = std::strtoull(argv[i] + 11, nullptr, 10);
    if (!std::strncmp(argv[i], "--reps=", 7)) gReps = std::atoi(argv[i] + 7);
  }
  if (!sqz::cudaCodecAvailable()) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::vector<float> host(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1e-3f);
  for (auto& v : host) v = d(rng);

  float *x, *e, *acc, *copy;
  CHECK(cudaMalloc(&x, n * 4));
  CHECK(cudaMalloc(&e, n * 4));
  CHECK(cudaMalloc(&acc, n * 4));
  CHECK(cudaMalloc(&copy, n * 4));
  CHECK(cudaMemcpy(x, host.data(), n * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemset(e, 0, n * 4));
  CHECK(cudaMemset(acc, 0, n * 4));
  sqz::GradStats* stats;
  int* err;
  CHECK(cudaMalloc(&stats, sizeof(sqz::GradStats)));
  CHECK(cudaMalloc(&err, sizeof(int)));
  CHECK(cudaMemset(err, 0, sizeof(int)));

  const double copyMs = timeMs([&] { CHECK(cudaMemcpyAsync(copy, x, n * 4, cudaMemcpyDeviceToDevice)); });
  const double gb = n * 4.0 / 1e9;
  std::printf("# sqz CUDA kernels on %s, %zu fp32 elements (%.0f MiB), median of %d\n\n", prop.name, n,
              n * 4.0 / (1 << 20), gReps);
  std::printf("| kernel | codec | ms | GB/s (fp32 input) | fraction of D2D copy |\n|---|---|---:|---:|---:|\n");
  auto row = [&](const char* kernel, const std::string& codec, double ms) {
    std::printf("| %s | %s | %.3f | %.1f | %.2f |\n", kernel, codec.c_str(), ms, gb / (ms / 1e3), copyMs / ms);
    std::fflush(stdout);
  };
  row("cudaMemcpy D2D", "-", copyMs);
  row("stats (g+e, one pass)", "-", timeMs([&] {
        CHECK(cudaMemsetAsync(stats, 0, sizeof(sqz::GradStats)));
        sqz::cudaGradStats(x, sqzFloat32, e, n, stats, nullptr);
      }));

  for (const char* spec : {"q8", "q4", "q2", "q1", "q8:rn", "q4:rn", "bf16", "fp16", "topk:0.01", "topk:0.01:bf16",
                           "randk:0.01"}) {
    const sqz::CodecParams p = sqz::parseCodecSpec(spec);
    const size_t bytes = sqz::encodedBytes(p, n);
    void *payload, *ws = nullptr;
    CHECK(cudaMalloc(&payload, bytes));
    const size_t wsBytes = std::max(sqz::cudaEncodeWorkspaceBytes(p, n), sqz::cudaDecodeWorkspaceBytes(p, n));
    if (wsBytes) CHECK(cudaMalloc(&ws, wsBytes));
    sqz::EncodeArgs a;
    a.input = x;
    a.count = n;
    a.seed = 7;
    row("encode", spec, timeMs([&] { sqz::cudaEncode(p, a, payload, ws, nullptr); }));
    a.residual = e;
    row("encode+EF", spec, timeMs([&] { sqz::cudaEncode(p, a, payload, ws, nullptr); }));
    sqz::DecodeExpect ex;
    ex.params = p;
    ex.count = n;
    ex.seed = 7;
    row("decode+accumulate", spec,
        timeMs([&] { sqz::cudaDecode(ex, payload, bytes, acc, sqz::DecodeMode::Accumulate, err, ws, nullptr); }));
    int h = 0;
    CHECK(cudaMemcpy(&h, err, sizeof h, cudaMemcpyDeviceToHost));
    if (h) std::printf("decode error for %s: %s\n", spec, sqz::cudaDecodeErrorString(h));
    CHECK(cudaFree(payload));
    if (ws) CHECK(cudaFree(ws));
  }
  std::printf("\ntop-K at 1%%: K = %zu of %zu\n", sqz::selectedCount(sqz::parseCodecSpec("topk:0.01"), n), n);
  return 0;
}
