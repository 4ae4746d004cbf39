#include "src/tuner/link_curve.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace sqz {

std::vector<double> LinkCurve::standardSizes() {
  std::vector<double> sizes;
  for (double b = 1024.0; b <= 256.0 * 1024 * 1024; b *= 4.0) sizes.push_back(b);
  return sizes;
}

LinkCurve::LinkCurve(std::vector<Point> points) : points_(std::move(points)) {
  SQZ_REQUIRE(!points_.empty(), sqzInvalidUsage, "a link curve needs at least one point");
  for (size_t i = 0; i < points_.size(); ++i) {
    const Point& p = points_[i];
    SQZ_REQUIRE(std::isfinite(p.bytes) && std::isfinite(p.seconds) && p.bytes > 0 && p.seconds > 0,
                sqzInvalidUsage, "link curve point %zu (%g bytes, %g s) must be finite and positive", i, p.bytes,
                p.seconds);
    if (i > 0) {
      SQZ_REQUIRE(p.bytes > points_[i - 1].bytes, sqzInvalidUsage, "link curve sizes must increase (point %zu)", i);
      SQZ_REQUIRE(p.seconds >= points_[i - 1].seconds, sqzInvalidUsage,
                  "link curve times must not decrease with size (point %zu)", i);
    }
  }
}

LinkCurve LinkCurve::fromLatencyBandwidth(double latencySeconds, double bytesPerSecond) {
  SQZ_REQUIRE(latencySeconds > 0 && bytesPerSecond > 0, sqzInvalidUsage,
              "latency and bandwidth must be positive");
  std::vector<Point> pts;
  for (double b : standardSizes()) pts.push_back({b, latencySeconds + b / bytesPerSecond});
  return LinkCurve(std::move(pts));
}

double LinkCurve::largeMessageBandwidth() const {
  if (points_.size() < 2) return points_.empty() ? 0.0 : points_[0].bytes / points_[0].seconds;
  const Point& a = points_[points_.size() - 2];
  const Point& b = points_.back();
  const double dt = b.seconds - a.seconds;
  // A flat last segment means "no measurable bandwidth limit": use the
  // average rate of the last point, which is finite and conservative.
  return dt > 0 ? (b.bytes - a.bytes) / dt : b.bytes / b.seconds;
}

double LinkCurve::time(double bytes) const {
  if (bytes <= 0.0 || points_.empty()) return 0.0;
  const Point& first = points_.front();
  const Point& last = points_.back();
  if (points_.size() == 1) return first.seconds * (bytes > first.bytes ? bytes / first.bytes : 1.0);
  if (bytes >= last.bytes) return last.seconds + (bytes - last.bytes) / largeMessageBandwidth();
  if (bytes <= first.bytes) {
    // Linear in bytes below the smallest measured message, at the first
    // segment's slope or the steady rate's, whichever saves less: a first
    // segment steeper than the steady rate (the testbed's 100 Mbit/s curve:
    // 1 KiB in 93 us, 4 KiB in 676 us) would otherwise price a 520-byte
    // message at a few microseconds, under a tenth of the 1 KiB message's
    // latency. Never below the first point's time scaled by bytes (so the
    // curve stays continuous and increasing down to zero).
    const Point& second = points_[1];
    const double slope = std::min((second.seconds - first.seconds) / (second.bytes - first.bytes),
                                  1.0 / largeMessageBandwidth());
    const double t = first.seconds - (first.bytes - bytes) * slope;
    return std::max(t, first.seconds * bytes / first.bytes);
  }
  // Binary search for the segment [lo, lo+1] holding bytes.
  size_t lo = 0, hi = points_.size() - 1;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (points_[mid].bytes <= bytes) lo = mid; else hi = mid;
  }
  const Point& a = points_[lo];
  const Point& b = points_[hi];
  const double f = (std::log(bytes) - std::log(a.bytes)) / (std::log(b.bytes) - std::log(a.bytes));
  return std::exp(std::log(a.seconds) + f * (std::log(b.seconds) - std::log(a.seconds)));
}

double LinkCurve::halfBandwidthBytes() const {
  if (points_.empty()) return 0.0;
  const double first = points_.front().bytes;
  double bytes = 1.0;
  while (bytes < first) bytes *= 2.0;
  const double floor = time(first);
  // Past the last point the curve grows linearly, so this ends.
  while (time(bytes) < 2.0 * floor) bytes *= 2.0;
  return bytes;
}

}  // namespace sqz
