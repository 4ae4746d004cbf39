#include "common/env.h"

#include <cstdlib>

#include "common/error.h"
#include "common/strict_number.h"

namespace sqz {

std::string envString(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}

uint64_t envBytes(const char* name, uint64_t fallback, uint64_t min, uint64_t max) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  uint64_t out = 0;
  if (!parseByteSize(v, max, &out) || out < min)
    fail(sqzInvalidArgument,
         "%s=%s: expected a byte count from %llu to %llu (digits with an optional K, M, G or T suffix, e.g. 64K)",
         name, v, static_cast<unsigned long long>(min), static_cast<unsigned long long>(max));
  return out;
}

uint64_t envUnsigned(const char* name, uint64_t fallback, uint64_t min, uint64_t max) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  uint64_t out = 0;
  if (!parseUnsigned(v, max, &out) || out < min)
    fail(sqzInvalidArgument, "%s=%s: expected a whole number from %llu to %llu (decimal digits only)", name, v,
         static_cast<unsigned long long>(min), static_cast<unsigned long long>(max));
  return out;
}

double timeoutSeconds() {
  const char* v = std::getenv("SQZ_TIMEOUT");
  if (!v || !*v) return kDefaultTimeoutSeconds;
  double t = 0;
  if (!parseDecimal(v, kMaxTimeoutSeconds, &t) || t < kMinTimeoutSeconds)
    fail(sqzInvalidArgument, "SQZ_TIMEOUT=%s: expected a number of seconds from %g to %g (e.g. 30 or 0.5)", v,
         kMinTimeoutSeconds, kMaxTimeoutSeconds);
  return t;
}

double timeoutSecondsOrDefault() noexcept {
  try {
    return timeoutSeconds();
  } catch (...) {
    return kDefaultTimeoutSeconds;
  }
}

int Deadline::remainingMs() const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  end_ - std::chrono::steady_clock::now())
                  .count();
  if (left < 0) return 0;
  if (left > INT32_MAX) return INT32_MAX;
  return static_cast<int>(left);
}

}  // namespace sqz
