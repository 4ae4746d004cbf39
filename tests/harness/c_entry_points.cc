// The harness behind a C ABI, for the Python tests (python/tests/lossy.py
// loads this library through ctypes; .ci/python.sh builds it and names it
// in SQZ_TEST_CHECKS): they check lossy results with the same code as every
// C++ test, and make the same tuner profiles.
#include <cstring>
#include <string>

#include "harness/link_profile.h"
#include "harness/lossy_check.h"

#define SQZ_TEST_C_API extern "C" __attribute__((visibility("default")))

namespace {

void copyMessage(const std::string& text, char* out, size_t outBytes) {
  if (!out || outBytes == 0) return;
  std::strncpy(out, text.c_str(), outBytes - 1);
  out[outBytes - 1] = '\0';
}

}  // namespace

// inputs: nranks x count floats, rank-major (what each rank contributed);
// out: the result. 0 when it passes, else 1 and why.
SQZ_TEST_C_API int sqzTestCheckLossy(int nranks, size_t count, const float* inputs, const float* out, const char* plan,
                                     const char* codec, int exact, int type, int op, char* why, size_t whyBytes) {
  sqz::test::Contributions y(static_cast<size_t>(nranks));
  for (int r = 0; r < nranks; ++r) y[r].assign(inputs + r * count, inputs + (r + 1) * count);
  sqz::test::LossyCall call;
  call.plan = plan;
  call.codec = codec;
  call.exact = exact != 0;
  call.type = static_cast<sqzDataType_t>(type);
  call.op = static_cast<sqzRedOp_t>(op);
  const std::string result = sqz::test::checkLossy(y, std::vector<float>(out, out + count), call);
  copyMessage(result, why, whyBytes);
  return result.empty() ? 0 : 1;
}

// writeLinkProfile: the path into `path` (0), or 1.
SQZ_TEST_C_API int sqzTestWriteLinkProfile(double latencySeconds, double bytesPerSecond, char* path, size_t pathBytes) {
  try {
    copyMessage(sqz::test::writeLinkProfile(latencySeconds, bytesPerSecond), path, pathBytes);
    return 0;
  } catch (...) {
    return 1;
  }
}
