// zero_runs.h: the code of the statistics' zeros. Round trips on arrays with
// every kind of zero run, the size bound, and what a decoder must refuse: a
// truncated code, one with words to spare, counts past the array's end. The
// corrupted codes run under AddressSanitizer in CI, which is what shows the
// decoder never leaves its two arrays.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "collectives/zero_runs.h"

namespace {

std::vector<uint16_t> encode(const std::vector<uint16_t>& words) {
  std::vector<uint16_t> code;
  sqz::encodeZeroRuns(words.data(), words.size(), &code);
  return code;
}

// Arrays of n words whose zeros come in runs of 1 to maxRun, at `density`.
std::vector<uint16_t> randomWords(size_t n, double density, int maxRun, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> run(1, maxRun);
  std::uniform_int_distribution<int> value(1, 0xffff);
  std::vector<uint16_t> w;
  while (w.size() < n) {
    if (u(rng) < density)
      w.insert(w.end(), std::min<size_t>(run(rng), n - w.size()), 0);
    else
      w.push_back(static_cast<uint16_t>(value(rng)));
  }
  return w;
}

TEST(ZeroRuns, RoundTripsEveryPatternWithinTwoWordsOfTheInput) {
  std::vector<std::vector<uint16_t>> cases = {{}, {0}, {7}, {0, 0}, {0, 0, 0}, {5, 0, 0, 0}, {0, 0, 0, 5}, {0, 5, 0, 5}};
  cases.push_back(std::vector<uint16_t>(785, 0));
  cases.push_back(std::vector<uint16_t>(785, 0x8000));  // -0.0: a value, not a zero
  for (int maxRun : {1, 2, 3, 4, 40})
    for (double density : {0.1, 0.5, 0.9})
      for (size_t n : {1, 2, 3, 17, 785}) cases.push_back(randomWords(n, density, maxRun, n * 131 + maxRun));
  for (const auto& words : cases) {
    const auto code = encode(words);
    EXPECT_LE(code.size(), sqz::maxZeroRunWords(words.size()));
    std::vector<uint16_t> back(words.size(), 0x1234);
    ASSERT_TRUE(sqz::decodeZeroRuns(code.data(), code.size(), back.data(), back.size())) << words.size();
    EXPECT_EQ(back, words);
  }
}

TEST(ZeroRuns, LongRunsOfZerosGoAsTheirLength) {
  // The statistics' shape: 273 values, then 512 histogram bins of which 60
  // are filled, in one stretch.
  std::vector<uint16_t> words(785, 0);
  for (size_t i = 0; i < 273; ++i) words[i] = static_cast<uint16_t>(i + 1);
  for (size_t i = 400; i < 430; ++i) words[i] = words[i + 256] = 0x3f80;
  EXPECT_EQ(encode(words).size(), 2 + 273 + 2 + 30 + 2 + 30 + 2);  // four groups
}

TEST(ZeroRuns, RefusesACodeThatIsNotExactlyTheArray) {
  const auto words = randomWords(200, 0.5, 6, 9);
  const auto code = encode(words);
  std::vector<uint16_t> out(words.size());
  // Every truncation (each in an array of exactly its length, so that
  // AddressSanitizer sees a read past it), and one word to spare.
  for (size_t k = 0; k < code.size(); ++k) {
    const std::vector<uint16_t> prefix(code.begin(), code.begin() + static_cast<std::ptrdiff_t>(k));
    EXPECT_FALSE(sqz::decodeZeroRuns(prefix.data(), k, out.data(), out.size())) << "truncated to " << k;
  }
  auto longer = code;
  longer.push_back(0);
  EXPECT_FALSE(sqz::decodeZeroRuns(longer.data(), longer.size(), out.data(), out.size()));
  // The right code for a different length.
  EXPECT_FALSE(sqz::decodeZeroRuns(code.data(), code.size(), out.data(), out.size() - 1));
  // A count past the end of the array.
  const uint16_t pastEnd[] = {150, 51};
  EXPECT_FALSE(sqz::decodeZeroRuns(pastEnd, 2, out.data(), out.size()));
  // Every word of the code replaced by each of a few values: decoded within
  // the arrays (ASan), and a code accepted for one length is refused for
  // the next (it describes exactly one).
  int refused = 0;
  for (size_t k = 0; k < code.size(); ++k)
    for (uint16_t v : {uint16_t{0}, uint16_t{1}, uint16_t{3}, uint16_t{199}, uint16_t{200}, uint16_t{0xffff}}) {
      auto bad = code;
      bad[k] = v;
      std::vector<uint16_t> exact(words.size()), oneMore(words.size() + 1);
      if (sqz::decodeZeroRuns(bad.data(), bad.size(), exact.data(), exact.size()))
        EXPECT_FALSE(sqz::decodeZeroRuns(bad.data(), bad.size(), oneMore.data(), oneMore.size())) << k << " " << v;
      else
        ++refused;
    }
  EXPECT_GT(refused, static_cast<int>(code.size()));  // most changes to a count are caught
}

}  // namespace
