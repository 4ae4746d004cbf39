// The run-time-dispatched fp16 array conversions of kernels/cpu_half_simd.h
// (F16C where the CPU has it) give exactly the bits of the portable
// conversions of kernels/half.h, which define the wire format and what the
// GPU computes: every one of the 2^32 floats and 2^16 halves is checked.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu_half_simd.h"

namespace sqz {
namespace {

TEST(CpuHalf, EveryHalfToFloat) {
  std::vector<uint16_t> h(1u << 16);
  for (uint32_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  // Odd lengths and offsets take the vector body and the scalar tail.
  for (size_t off : {0u, 3u}) {
    std::vector<float> f(h.size() - off);
    cpusimd::fp16ToFloatN(h.data() + off, f.data(), f.size());
    for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(floatBits(f[i]), floatBits(fp16ToFloat(h[i + off]))) << h[i + off];
  }
}

#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
// Unoptimized sanitizer builds (CI runs the unit tests again at -O0 with
// ASan): every 61st pattern, runs of consecutive ones, all exponents.
constexpr uint64_t kStride = 61;
#else
constexpr uint64_t kStride = 1;
#endif

// Each thread sweeps a quarter of the 2^32 bit patterns in runs of 4096
// (optimized builds: all of them, a few seconds).
TEST(CpuHalf, EveryFloatToHalf) {
  constexpr uint64_t kAll = uint64_t{1} << 32;
  constexpr unsigned kThreads = 4;
  constexpr size_t kRun = 4096 + 5;  // not a multiple of 8: the tail path too
  std::vector<uint64_t> firstBad(kThreads, kAll);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<float> x(kRun);
      std::vector<uint16_t> h(kRun);
      const uint64_t end = kAll / kThreads * (t + 1);
      for (uint64_t b = kAll / kThreads * t; b < end; b += kRun * kStride) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kRun, end - b));
        for (size_t i = 0; i < n; ++i) x[i] = bitsFloat(static_cast<uint32_t>(b + i));
        cpusimd::floatToFp16N(x.data(), h.data(), n);
        for (size_t i = 0; i < n; ++i) {
          if (h[i] != floatToFp16(x[i])) {
            firstBad[t] = b + i;
            return;
          }
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (unsigned t = 0; t < kThreads; ++t) EXPECT_EQ(firstBad[t], kAll) << "float bits 0x" << std::hex << firstBad[t];
}

// The dispatch takes the F16C path exactly where the CPU has F16C and AVX2
// (as the kernel reports them in /proc/cpuinfo) and SQZ_CPU_ISA does not
// cap the choice at "base": a detection that never fires, or fires where
// the instructions are missing, fails here.
TEST(CpuHalf, DispatchFollowsTheCpu) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
  const bool cpuHas = flags.find(" f16c ") != std::string::npos && flags.find(" avx2 ") != std::string::npos;
  const char* cap = std::getenv("SQZ_CPU_ISA");
  const bool capped = cap && std::string(cap) == "base";
  const bool expected = SQZ_CPU_SIMD && cpuHas && !capped;
  RecordProperty("f16c", cpusimd::haveF16c() ? "yes" : "no");
  EXPECT_EQ(cpusimd::haveF16c(), expected) << "cpuinfo f16c+avx2: " << cpuHas << ", SQZ_CPU_ISA=" << (cap ? cap : "");
}

}  // namespace
}  // namespace sqz
