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
// adds at most 2^-24).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "transport/transport.h"

namespace sqz {

class SumExchange {
 public:
  // What one rank sends to each peer for an array of n doubles.
  static constexpr size_t wireBytes(size_t n) { return n * sizeof(uint16_t); }
  // Values beyond bfloat16's range saturate at its largest finite value;
  // NaN stays NaN.
  void start(Transport& transport, uint32_t seq, uint32_t slot, const double* mine, size_t n);
  void finish(const Deadline& deadline, double* sum);
  bool active() const { return transport_ != nullptr; }

 private:
  Transport* transport_ = nullptr;
  size_t n_ = 0;
  std::vector<uint16_t> all_;  // every rank's array as bfloat16 bits, in rank order
  std::vector<RequestId> reqs_;
};

}  // namespace sqz
