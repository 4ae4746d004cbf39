// The one parser of numbers and sizes in configuration text (SQZ_* variables,
// the port of SQZ_ROOT, SQZ_TUNE's size bounds, codec options). Strict: the
// whole text is the number, with no sign, no blanks, no "inf" or "nan", no
// trailing junk, and nothing past `max`. Pure functions with no dependency,
// so the NCCL interposer compiles this same file.
#pragma once

#include <cstdint>

namespace sqz {

// Decimal digits only ("0" to max).
bool parseUnsigned(const char* text, uint64_t max, uint64_t* out);

// Digits with an optional binary suffix: K, M, G or T (any case), which may
// be followed by B or iB ("64k", "64KiB", "1M", "512"); a lone B means bytes.
bool parseByteSize(const char* text, uint64_t max, uint64_t* out);

// A finite decimal number: digits with an optional fraction and exponent
// ("30", "0.5", ".25", "1e-3"), in [0, max].
bool parseDecimal(const char* text, double max, double* out);

}  // namespace sqz
