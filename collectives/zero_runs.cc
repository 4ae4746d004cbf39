#include "collectives/zero_runs.h"

#include <algorithm>

#include "common/error.h"

namespace sqz {

void encodeZeroRuns(const uint16_t* words, size_t n, std::vector<uint16_t>* out) {
  SQZ_CHECK(n <= kZeroRunsMaxWords, "zero runs code at most %zu words, not %zu", kZeroRunsMaxWords, n);
  constexpr size_t kMinRun = 3;  // a shorter run of zeros costs less as literals than as a new group
  auto zerosAt = [&](size_t i) {
    size_t j = i;
    while (j < n && words[j] == 0) ++j;
    return j - i;
  };
  size_t i = 0;
  do {
    const size_t zeros = zerosAt(i);
    i += zeros;
    size_t end = i;
    while (end < n) {
      const size_t run = words[end] == 0 ? zerosAt(end) : 0;
      if (run >= kMinRun) break;
      end += std::max<size_t>(run, 1);
    }
    out->push_back(static_cast<uint16_t>(zeros));
    out->push_back(static_cast<uint16_t>(end - i));
    out->insert(out->end(), words + i, words + end);
    i = end;
  } while (i < n);
}

bool decodeZeroRuns(const uint16_t* in, size_t inWords, uint16_t* out, size_t n) {
  size_t at = 0, pos = 0;
  do {
    if (inWords - at < 2) return false;
    const size_t zeros = in[at], literals = in[at + 1];
    at += 2;
    if (zeros + literals > n - pos || literals > inWords - at) return false;
    std::fill(out + pos, out + pos + zeros, uint16_t{0});
    pos += zeros;
    std::copy(in + at, in + at + literals, out + pos);
    pos += literals;
    at += literals;
  } while (pos < n);
  return at == inWords;
}

}  // namespace sqz
