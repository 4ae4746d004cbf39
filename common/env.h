// Configuration from the environment, NCCL-style (SQZ_* variables).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sqz {

// The variable's value, or `fallback` when unset or empty.
std::string envString(const char* name, const std::string& fallback = "");
// Parses an integer with an optional K/M/G (binary) suffix; warns and falls
// back on malformed values.
int64_t envInt(const char* name, int64_t fallback);
double envDouble(const char* name, double fallback);

// SQZ_TIMEOUT in seconds (default 300): the bound on every wait.
double timeoutSeconds();

// Parses "64k", "1M", "3" etc. Returns false on malformed text.
bool parseSize(const std::string& text, int64_t* out);

// A point in time after which a wait gives up.
class Deadline {
 public:
  explicit Deadline(double seconds)
      : end_(std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(seconds))) {}
  static Deadline fromTimeout() { return Deadline(timeoutSeconds()); }
  bool expired() const { return std::chrono::steady_clock::now() >= end_; }
  // Milliseconds left, clamped to [0, INT32_MAX], for poll().
  int remainingMs() const;

 private:
  std::chrono::steady_clock::time_point end_;
};

}  // namespace sqz
