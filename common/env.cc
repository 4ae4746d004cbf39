#include "common/env.h"

#include <cctype>
#include <cstdlib>

#include "common/log.h"

namespace sqz {

std::string envString(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}

bool parseSize(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || v < 0) return false;
  std::string suffix(end);
  int64_t mult = 1;
  if (suffix.empty()) {
  } else if (suffix.size() == 1 || (suffix.size() == 2 && (suffix[1] == 'B' || suffix[1] == 'b')) ||
             (suffix.size() == 3 && (suffix.substr(1) == "iB"))) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
      case 'K': mult = 1LL << 10; break;
      case 'M': mult = 1LL << 20; break;
      case 'G': mult = 1LL << 30; break;
      case 'B': mult = 1; if (suffix.size() != 1) return false; break;
      default: return false;
    }
  } else {
    return false;
  }
  *out = static_cast<int64_t>(v) * mult;
  return true;
}

int64_t envInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  int64_t out = 0;
  if (!parseSize(v, &out)) {
    SQZ_WARN("ignoring %s=%s: not a non-negative integer (using %lld)", name, v,
             static_cast<long long>(fallback));
    return fallback;
  }
  return out;
}

double envDouble(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(d >= 0)) {
    SQZ_WARN("ignoring %s=%s: not a non-negative number (using %g)", name, v, fallback);
    return fallback;
  }
  return d;
}

double timeoutSeconds() {
  double t = envDouble("SQZ_TIMEOUT", 300.0);
  return t > 0 ? t : 300.0;
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
