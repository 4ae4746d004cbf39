// Every kernel compiled into libsqz is on the list the device path preloads
// (kernels/cuda_device_ops.h: cudaLoadAllKernels), so that no kernel is ever
// loaded lazily while a staging wait kernel spins. The library's kernels are
// counted from its symbol table: each kernel (each template instance) has a
// host stub with one static `__handle` (nvcc's registration). No GPU needed.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "kernels/cuda_device_ops.h"

namespace sqz::test {
namespace {

TEST(KernelList, PreloadListHoldsEveryKernelOfTheLibrary) {
  const std::vector<const void*> entries = cudaAllKernelEntries();
  const std::set<const void*> distinct(entries.begin(), entries.end());
  EXPECT_EQ(distinct.size(), entries.size()) << "a kernel is listed twice";

  const std::string command = std::string("nm -C '") + SQZ_LIBSQZ_PATH + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> nm(popen(command.c_str(), "r"), pclose);
  ASSERT_NE(nm, nullptr);
  std::set<std::string> stubs;
  char line[8192];
  while (std::fgets(line, sizeof line, nm.get())) {
    std::string s(line);
    const size_t at = s.find("__device_stub__");
    if (at != std::string::npos && s.find(")::__handle") != std::string::npos) stubs.insert(s.substr(at));
  }
  ASSERT_GT(stubs.size(), 0u) << "no kernel stubs found by '" << command << "'";
  EXPECT_EQ(entries.size(), stubs.size())
      << "libsqz holds " << stubs.size() << " kernels but cudaAllKernelEntries lists " << entries.size()
      << ": a kernel was added without being listed (kernels/cuda_codec.cu, kernels/cuda_device_ops.cu)";
}

}  // namespace
}  // namespace sqz::test
