// CPU codec throughput, reported as bytes/s of the fp32 input, next to
// memcpy of the same buffer in the same run (the bandwidth ceiling). The
// buffer (default 16 Mi elements = 64 MiB) is larger than the caches.
//   sqz_codec_bench [--elements=N] [google-benchmark flags]
// SQZ_CPU_ISA=base|avx2 caps the run-time dispatch of the quantizer and fp16
// paths (default: the best the CPU has); the chosen level is printed in the
// context as sqz_cpu_isa.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_codec.h"
#include "kernels/cpu_half_simd.h"
#include "src/codec/codec_spec.h"

namespace {

size_t gElements = size_t{16} << 20;

const std::vector<float>& input() {
  static std::vector<float> x = [] {
    std::vector<float> v(gElements);
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 1e-3f);
    for (auto& f : v) f = d(rng);
    return v;
  }();
  return x;
}

void setBytes(benchmark::State& st) {
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(gElements * sizeof(float)));
}

void memcpyBench(benchmark::State& st) {
  const auto& x = input();
  std::vector<float> y(x.size(), 1.0f);
  for (auto _ : st) {
    std::memcpy(y.data(), x.data(), x.size() * sizeof(float));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  setBytes(st);
}

void encodeBench(benchmark::State& st, const std::string& spec, bool ef) {
  const sqz::CodecParams p = sqz::parseCodecSpec(spec);
  const auto& x = input();
  std::vector<float> e(x.size(), 0.0f);
  std::vector<uint8_t> payload(sqz::encodedBytes(p, x.size()));
  sqz::EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  a.residual = ef ? e.data() : nullptr;
  uint64_t step = 0;
  for (auto _ : st) {
    a.step = step++;
    sqz::encodeCpu(p, a, payload.data(), payload.size());
    benchmark::DoNotOptimize(payload.data());
  }
  setBytes(st);
  st.counters["ratio"] = static_cast<double>(x.size() * 4) / payload.size();
}

void decodeBench(benchmark::State& st, const std::string& spec) {
  const sqz::CodecParams p = sqz::parseCodecSpec(spec);
  const auto& x = input();
  std::vector<uint8_t> payload(sqz::encodedBytes(p, x.size()));
  sqz::EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  sqz::encodeCpu(p, a, payload.data(), payload.size());
  sqz::DecodeExpect ex;
  ex.params = p;
  ex.count = x.size();
  std::vector<float> acc(x.size(), 0.0f);
  for (auto _ : st) {
    sqz::decodeCpu(ex, payload.data(), payload.size(), acc.data(), sqz::DecodeMode::Accumulate);
    benchmark::DoNotOptimize(acc.data());
  }
  setBytes(st);
}

void statsBench(benchmark::State& st, bool ef) {
  const auto& x = input();
  std::vector<float> e(x.size(), 1e-4f);
  sqz::GradStats s;
  for (auto _ : st) {
    sqz::clearStats(&s);
    sqz::gradStatsCpu(x.data(), sqzFloat32, ef ? e.data() : nullptr, x.size(), &s);
    benchmark::DoNotOptimize(&s);
  }
  setBytes(st);
}

void registerAll() {
  const std::vector<std::string> specs = {"none", "bf16", "fp16", "q8", "q4", "q2", "q1", "q8:rn", "q4:rn",
                                          "q4:block=64", "q4:block=1024", "sign", "sign:rot", "topk:0.01",
                                          "randk:0.01"};
  benchmark::RegisterBenchmark("memcpy", memcpyBench)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("stats", statsBench, false)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("stats+residual", statsBench, true)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const auto& s : specs) {
    benchmark::RegisterBenchmark(("encode/" + s).c_str(), encodeBench, s, false)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("encode+ef/" + s).c_str(), encodeBench, s, true)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("decode+acc/" + s).c_str(), decodeBench, s)->Unit(benchmark::kMillisecond)->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--elements=", 11) == 0) gElements = std::strtoull(argv[i] + 11, nullptr, 10);
  }
  registerAll();
  const auto isa = sqz::cpusimd::activeIsa();
  benchmark::AddCustomContext("sqz_cpu_isa", isa == sqz::cpusimd::Isa::Avx512 ? "avx512"
                                             : isa == sqz::cpusimd::Isa::Avx2 ? "avx2"
                                                                               : "base");
  benchmark::AddCustomContext("sqz_f16c", sqz::cpusimd::haveF16c() ? "yes" : "no");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
