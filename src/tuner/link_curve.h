// time(bytes) of one link, from measured points (DESIGN.md section 3).
// Between points: piecewise linear in log(bytes)-log(seconds), which follows
// both the flat latency-bound start and the linear bandwidth-bound end of a
// real curve. Beyond the ends: the line latency + bytes / bandwidth through
// the end point, with the bandwidth of the last segment (below the first
// point, the first segment's or the last's, whichever is shallower), so a
// 1 GiB message costs four times a 256 MiB one and a 1-byte message about
// what 1 KiB costs.
#pragma once

#include <cstddef>
#include <vector>

namespace sqz {

class LinkCurve {
 public:
  struct Point {
    double bytes;
    double seconds;
  };
  // Calibration sizes: powers of four from 1 KiB to 256 MiB (10 points).
  static std::vector<double> standardSizes();

  LinkCurve() = default;
  // Points must have strictly increasing bytes > 0 and seconds > 0 that do
  // not decrease; throws sqz::Error(sqzInvalidUsage) otherwise. At least one.
  explicit LinkCurve(std::vector<Point> points);
  // latency + bytes / bandwidth sampled at standardSizes().
  static LinkCurve fromLatencyBandwidth(double latencySeconds, double bytesPerSecond);

  bool empty() const { return points_.empty(); }
  const std::vector<Point>& points() const { return points_; }
  // Seconds to move `bytes` (0 bytes: 0 seconds).
  double time(double bytes) const;
  // The asymptotic bandwidth the curve extrapolates with (bytes/s).
  double largeMessageBandwidth() const;
  // The smallest power-of-two message (from the first point's size up) that
  // takes at least twice as long as the first point's: Hockney's n_1/2, the
  // size where latency stops being most of a message's time. 0 when empty.
  double halfBandwidthBytes() const;

 private:
  std::vector<Point> points_;
};

}  // namespace sqz
