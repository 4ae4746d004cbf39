// A small sum of per-rank arrays of doubles that overlaps a collective:
// start() posts the messages (every rank's array to every other), finish()
// waits and adds them in rank order, so every rank gets bitwise the same
// sum. The tuner's lagged statistics ride along this way without an extra
// round trip. The arrays travel as bfloat16, a quarter of the doubles'
// bytes (on a slow link the statistics of a small buffer cost as much as
// its compressed payload, and a tuner's estimates need two or three
// significant digits, not seven), each rank's own one rounded alike, and
// are summed in double: a value a rank contributes moves by at most 2^-8
// of itself (bfloat16's rounding to nearest; the float rounding before it
// adds at most 2^-24). Runs of zeros go as their length (zero_runs.h): the
// statistics' histogram is mostly zeros, and so is the residual's sketch
// under an exact plan (measured: about half the bytes then, a quarter off
// under a lossy one; perf/results/training.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "collectives/zero_runs.h"
#include "transport/transport.h"

namespace sqz {

class SumExchange {
 public:
  // The most one rank sends to each peer for an array of n doubles (with no
  // zeros to elide); n <= kZeroRunsMaxWords.
  static constexpr size_t maxWireBytes(size_t n) { return maxZeroRunWords(n) * sizeof(uint16_t); }
  // Values beyond bfloat16's range saturate at its largest finite value;
  // NaN stays NaN. Returns the bytes this rank sends to each peer.
  size_t start(Transport& transport, uint32_t seq, uint32_t slot, const double* mine, size_t n);
  // Throws sqzInvalidUsage when a peer's message is not the code of n values.
  void finish(const Deadline& deadline, double* sum);
  bool active() const { return transport_ != nullptr; }
  // After finish(): the most bytes any rank sent to a peer (the same on
  // every rank, so it may price the next exchange).
  size_t largestWireBytes() const { return largest_; }

 private:
  Transport* transport_ = nullptr;
  size_t n_ = 0;
  size_t largest_ = 0;
  std::vector<uint16_t> all_;   // every rank's array as bfloat16 bits, in rank order
  std::vector<uint16_t> out_;   // this rank's code
  std::vector<uint16_t> in_;    // each peer's code, maxZeroRunWords(n) words apart
  std::vector<size_t> received_;
  std::vector<RequestId> reqs_;
};

}  // namespace sqz
