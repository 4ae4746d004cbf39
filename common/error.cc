#include "common/error.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace sqz {

std::string formatStringV(const char* fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return std::string();
  std::vector<char> buf(static_cast<size_t>(n) + 1);
  std::vsnprintf(buf.data(), buf.size(), fmt, ap);
  return std::string(buf.data(), static_cast<size_t>(n));
}

std::string formatString(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = formatStringV(fmt, ap);
  va_end(ap);
  return s;
}

void fail(sqzResult_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = formatStringV(fmt, ap);
  va_end(ap);
  throw Error(code, s);
}

namespace {

// The path from the repository root (__FILE__ may be absolute, or relative
// to a build folder).
const char* sourcePath(const char* file) {
  const char* best = nullptr;
  for (const char* top : {"/common/", "/collectives/", "/kernels/", "/transport/", "/src/", "/perf/", "/tests/"}) {
    const char* at = std::strstr(file, top);
    if (at && (!best || at < best)) best = at;
  }
  return best ? best + 1 : file;
}

}  // namespace

void failInternal(const char* file, int line, const char* cond, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = formatStringV(fmt, ap);
  va_end(ap);
  throw Error(sqzInternalError, formatString("internal error at %s:%d: %s: %s", sourcePath(file), line, cond, s.c_str()));
}

}  // namespace sqz
