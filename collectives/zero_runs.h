// Run-length coding of zero words, for small arrays of 16-bit values that
// are mostly zero in places: the tuner's statistics (a magnitude histogram
// of 2 x 256 bins, of which a gradient fills a few dozen, and a residual's
// sketch that is all zeros while the plan is exact) go to every peer on
// every exchange, and on a slow link their bytes are the exchange's cost.
//
// The code is a sequence of groups, each `z k w_1 .. w_k`: z zero words,
// then k words as they are. The encoder starts a new group only at a run of
// at least 3 zeros (a group's two counts cost 2 words), so no input grows
// by more than the first group's 2 words: maxZeroRunWords(n) = n + 2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sqz {

// Arrays up to this many words (the counts are 16-bit).
constexpr size_t kZeroRunsMaxWords = 0xffff;

constexpr size_t maxZeroRunWords(size_t n) { return n + 2; }

// Appends the code of words[0, n) to `out`; n <= kZeroRunsMaxWords.
void encodeZeroRuns(const uint16_t* words, size_t n, std::vector<uint16_t>* out);

// Decodes `in` (inWords words) into exactly n words of `out`. False, with
// `out` partly written, when the code does not describe exactly n words in
// exactly inWords words (truncated, overlong, or counts past the end);
// never reads or writes outside the two arrays.
bool decodeZeroRuns(const uint16_t* in, size_t inWords, uint16_t* out, size_t n);

}  // namespace sqz
