#include "common/strict_number.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <string>
#include <system_error>

namespace sqz {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Parses the leading digits of [p, end) into *v; returns past them, or null
// when there are none or they overflow.
const char* digits(const char* p, const char* end, uint64_t* v) {
  const char* q = p;
  while (q < end && isDigit(*q)) ++q;
  if (q == p) return nullptr;
  auto r = std::from_chars(p, q, *v, 10);
  if (r.ec != std::errc() || r.ptr != q) return nullptr;
  return q;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool parseUnsigned(const char* text, uint64_t max, uint64_t* out) {
  if (!text) return false;
  const char* end = text + std::strlen(text);
  uint64_t v = 0;
  if (digits(text, end, &v) != end || v > max) return false;
  *out = v;
  return true;
}

bool parseByteSize(const char* text, uint64_t max, uint64_t* out) {
  if (!text) return false;
  const char* end = text + std::strlen(text);
  uint64_t v = 0;
  const char* p = digits(text, end, &v);
  if (!p) return false;
  // The suffix, any case: "", "b", then "k", "kb", "kib" and the same for m, g, t.
  std::string suffix;
  for (const char* q = p; q < end; ++q) suffix += lower(*q);
  unsigned shift = 0;
  if (!suffix.empty() && suffix != "b") {
    const char* units = "kmgt";
    const char* unit = std::strchr(units, suffix[0]);
    const std::string rest = suffix.substr(1);
    if (!unit || !(rest.empty() || rest == "b" || rest == "ib")) return false;
    shift = 10 * static_cast<unsigned>(unit - units + 1);
  }
  if (shift && v > (UINT64_MAX >> shift)) return false;
  v <<= shift;
  if (v > max) return false;
  *out = v;
  return true;
}

bool parseDecimal(const char* text, double max, double* out) {
  if (!text) return false;
  const char* end = text + std::strlen(text);
  // The grammar first (from_chars alone would take "inf", "nan" and hex).
  const char* p = text;
  size_t intDigits = 0, fracDigits = 0;
  while (p < end && isDigit(*p)) ++p, ++intDigits;
  if (p < end && *p == '.') {
    ++p;
    while (p < end && isDigit(*p)) ++p, ++fracDigits;
  }
  if (intDigits + fracDigits == 0) return false;
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    const char* expStart = p;
    while (p < end && isDigit(*p)) ++p;
    if (p == expStart) return false;
  }
  if (p != end) return false;
  double v = 0;
  auto r = std::from_chars(text, end, v, std::chars_format::general);
  if (r.ec != std::errc() || r.ptr != end || !std::isfinite(v) || v > max) return false;
  *out = v;
  return true;
}

}  // namespace sqz
