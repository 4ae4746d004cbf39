// A small sum of per-rank arrays of doubles that overlaps a collective:
// start() posts the messages (every rank's array to every other), finish()
// waits and adds them in rank order, so every rank gets bitwise the same
// sum. The tuner's lagged statistics ride along this way without an extra
// round trip. The arrays travel as float32 (half the bytes: on a slow link
// the statistics of a small buffer cost more than its payload), each
// rank's own one rounded alike, and are summed in double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "transport/transport.h"

namespace sqz {

class SumExchange {
 public:
  // What one rank sends to each peer for an array of n doubles.
  static constexpr size_t wireBytes(size_t n) { return n * sizeof(float); }
  // Values beyond float32's range saturate at its largest finite value;
  // NaN stays NaN.
  void start(Transport& transport, uint32_t seq, uint32_t slot, const double* mine, size_t n);
  void finish(const Deadline& deadline, double* sum);
  bool active() const { return transport_ != nullptr; }

 private:
  Transport* transport_ = nullptr;
  size_t n_ = 0;
  std::vector<float> all_;
  std::vector<RequestId> reqs_;
};

}  // namespace sqz
