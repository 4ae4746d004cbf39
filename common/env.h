// Configuration from the environment, NCCL-style (SQZ_* variables). Numbers
// and sizes are read with the one strict parser (common/strict_number.h): a
// malformed value is an sqzInvalidArgument error that names the variable
// and the accepted form, never a warning and a silent default.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sqz {

// The variable's value, or `fallback` when unset or empty.
std::string envString(const char* name, const std::string& fallback = "");

// The largest byte count a size variable accepts: far above any buffer, far
// below where sums of a few of them could overflow.
inline constexpr uint64_t kMaxConfigBytes = uint64_t{1} << 48;

// A byte count (digits with an optional K/M/G/T suffix, common/strict_number.h)
// in [min, max]; `fallback` when unset or empty.
uint64_t envBytes(const char* name, uint64_t fallback, uint64_t min = 0, uint64_t max = kMaxConfigBytes);
// A plain decimal integer in [min, max]; `fallback` when unset or empty.
uint64_t envUnsigned(const char* name, uint64_t fallback, uint64_t min, uint64_t max);

// SQZ_TIMEOUT in seconds: the bound on every wait. A decimal number from
// kMinTimeoutSeconds to kMaxTimeoutSeconds; 300 when unset or empty. Throws
// when malformed (0 included: it bounds nothing). python/sqz/env.py reads it
// by the same rules.
inline constexpr double kDefaultTimeoutSeconds = 300.0;
inline constexpr double kMinTimeoutSeconds = 1e-3;
inline constexpr double kMaxTimeoutSeconds = 1e6;
double timeoutSeconds();
// The same, for paths that must not throw (teardown): the default when malformed.
double timeoutSecondsOrDefault() noexcept;

// A point in time after which a wait gives up.
class Deadline {
 public:
  explicit Deadline(double seconds) : Deadline(std::chrono::steady_clock::now(), seconds) {}
  // `seconds` after `start` (a time the caller already read).
  Deadline(std::chrono::steady_clock::time_point start, double seconds)
      : end_(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(seconds))) {}
  static Deadline fromTimeout() { return Deadline(timeoutSeconds()); }
  bool expired() const { return std::chrono::steady_clock::now() >= end_; }
  // Milliseconds left, clamped to [0, INT32_MAX], for poll().
  int remainingMs() const;

 private:
  std::chrono::steady_clock::time_point end_;
};

}  // namespace sqz
