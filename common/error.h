// sqz::Error carries a status code from deep inside the library up to the C
// boundary (src/api.cc), where it becomes the return value and the
// communicator's last error message. Exceptions never cross the C API.
#pragma once

#include <cstdarg>
#include <stdexcept>
#include <string>

#include "sqz.h"

namespace sqz {

class Error : public std::runtime_error {
 public:
  Error(sqzResult_t code, const std::string& what)
      : std::runtime_error(what), code_(code) {}
  sqzResult_t code() const { return code_; }

 private:
  sqzResult_t code_;
};

std::string formatString(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string formatStringV(const char* fmt, va_list ap);

[[noreturn]] void fail(sqzResult_t code, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

// A broken internal invariant: sqzInternalError with where it broke
// ("internal error at collectives/ring_allreduce.cc:42: cond: message").
[[noreturn]] void failInternal(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace sqz

// What the user got wrong (bad arguments, a mismatched call, a peer that
// sent garbage): fails with `code` and a message for them when `cond` is false.
#define SQZ_REQUIRE(cond, code, ...)          \
  do {                                        \
    if (!(cond)) ::sqz::fail(code, __VA_ARGS__); \
  } while (0)

// What sqz itself must guarantee: a false `cond` is a bug in sqz, reported
// as sqzInternalError with file:line so the report can be acted on.
#define SQZ_CHECK(cond, ...)                                                  \
  do {                                                                        \
    if (!(cond)) ::sqz::failInternal(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)
