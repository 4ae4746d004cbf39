#include "src/tuner/link_curve.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace sqz {
namespace {

TEST(LinkCurve, StandardSizesAreLogSpacedFrom1KiBTo256MiB) {
  auto s = LinkCurve::standardSizes();
  ASSERT_EQ(s.size(), 10u);
  EXPECT_EQ(s.front(), 1024.0);
  EXPECT_EQ(s.back(), 256.0 * 1024 * 1024);
}

TEST(LinkCurve, InterpolatesLogLogBetweenPoints) {
  LinkCurve c({{1024, 1e-5}, {4096, 4e-5}});
  // Halfway in log(bytes) is halfway in log(seconds): sqrt(1e-5 * 4e-5).
  EXPECT_NEAR(c.time(2048), 2e-5, 1e-12);
  EXPECT_DOUBLE_EQ(c.time(1024), 1e-5);
  EXPECT_DOUBLE_EQ(c.time(4096), 4e-5);
}

TEST(LinkCurve, ExtrapolatesLinearlyInBytesBeyondTheEnds) {
  LinkCurve c({{1024, 1e-5}, {4096, 4e-5}});
  // Last segment: 3072 bytes in 3e-5 s = 1.024e8 B/s.
  EXPECT_NEAR(c.largeMessageBandwidth(), 1.024e8, 1e-3);
  EXPECT_NEAR(c.time(8192), 4e-5 + 4096 / 1.024e8, 1e-15);
  // Below: through the first segment's slope, 1e-5 - 512 * 3e-5/3072.
  EXPECT_NEAR(c.time(512), 5e-6, 1e-15);
  EXPECT_EQ(c.time(0), 0.0);
}

// The first three of the testbed's 100 Mbit/s points (rounded): the first
// segment (1 -> 4 KiB, 0.19 us/B) is steeper than the last (4 -> 16 KiB,
// 0.0585 us/B), the steady rate of this curve.
// Through the first segment a 520-byte message took 93 - 504 * 0.19 = -3 us,
// and a few bytes more a few microseconds; at the steady rate it is
// 93 - 504 * 0.0585 = 63.5 us, and the curve rises with bytes down to zero.
TEST(LinkCurve, BelowTheFirstPointSavesNoMoreThanTheSteadyRate) {
  LinkCurve c({{1024, 93e-6}, {4096, 676e-6}, {16384, 1395e-6}});
  const double steady = (1395e-6 - 676e-6) / (16384 - 4096);
  EXPECT_NEAR(c.time(520), 93e-6 - 504 * steady, 1e-12);
  EXPECT_NEAR(c.time(540), 93e-6 - 484 * steady, 1e-12);
  double before = 0;
  for (double b = 1; b <= 1024; b += 1) {
    ASSERT_GT(c.time(b), before) << b;
    before = c.time(b);
  }
  EXPECT_DOUBLE_EQ(c.time(1024), 93e-6);
  // Where even the shallower slope runs below zero, the first point's time
  // scaled by bytes: here 1e-6 - 768 * 1.95e-9 < 0, so 1e-6 * 256 / 1024.
  LinkCurve steep({{1024, 1e-6}, {2048, 4e-6}, {4096, 8e-6}});
  EXPECT_NEAR(steep.time(256), 0.25e-6, 1e-15);
}

TEST(LinkCurve, LatencyBandwidthCurveMatchesItsFormulaAtEveryPoint) {
  LinkCurve c = LinkCurve::fromLatencyBandwidth(2e-6, 1e9);
  for (double b : LinkCurve::standardSizes()) EXPECT_NEAR(c.time(b), 2e-6 + b / 1e9, 1e-15);
  EXPECT_NEAR(c.time(1024.0 * 1024 * 1024), 2e-6 + 1024.0 * 1024 * 1024 / 1e9, 1e-9);
  // Between points the log-log line stays within a few percent of the formula.
  EXPECT_NEAR(c.time(3e6), 2e-6 + 3e6 / 1e9, 0.05 * (2e-6 + 3e6 / 1e9));
}

// n_1/2 by hand: the first point takes 1e-5 s, so the first power of two
// taking 2e-5 s or more. 2048: sqrt(1e-5 * 1.5e-5) = 1.22e-5; 4096: 1.5e-5;
// 8192: sqrt(1.5e-5 * 6e-5) = 3e-5.
TEST(LinkCurve, HalfBandwidthSizeIsTheFirstPowerOfTwoAtTwiceTheSmallestMessagesTime) {
  EXPECT_EQ(LinkCurve({{1024, 1e-5}, {4096, 1.5e-5}, {16384, 6e-5}}).halfBandwidthBytes(), 8192.0);
  // Past the last point, linear at 512 B per 4e-6 s: 2048 bytes take
  // 1.8e-5 s, 4096 bytes 3.4e-5 s.
  EXPECT_EQ(LinkCurve({{1024, 1e-5}, {1536, 1.4e-5}}).halfBandwidthBytes(), 4096.0);
  // One point: time grows in proportion beyond it.
  EXPECT_EQ(LinkCurve({{1000, 1e-5}}).halfBandwidthBytes(), 2048.0);
  EXPECT_EQ(LinkCurve().halfBandwidthBytes(), 0.0);
}

TEST(LinkCurve, RejectsMalformedPoints) {
  EXPECT_THROW(LinkCurve(std::vector<LinkCurve::Point>{}), Error);
  EXPECT_THROW(LinkCurve({{1024, 1e-5}, {1024, 2e-5}}), Error);
  EXPECT_THROW(LinkCurve({{1024, 2e-5}, {2048, 1e-5}}), Error);
  EXPECT_THROW(LinkCurve({{-1, 1e-5}}), Error);
  EXPECT_THROW(LinkCurve({{1024, 0}}), Error);
}

}  // namespace
}  // namespace sqz
