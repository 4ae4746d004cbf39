// measureRingStepCurve on a link shaped as the testbed's tc tbf shapes it: a
// token bucket (a rate, and a burst that goes out at once after idle time).
// A job's consecutive calls drain the burst, so the curve must price small
// messages at the rate; measured inside the burst they look many times
// cheaper than any call that follows another will find them.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "harness/memory_transport.h"
#include "src/tuner/calibration.h"

namespace {

// Rank 0's curve over `ranks` threads on a shaped ring.
sqz::LinkCurve shapedCurve(int ranks, double rate, double burst) {
  sqz::test::MemoryMailbox box;
  std::vector<sqz::LinkCurve> curves(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      sqz::test::MemoryTransport t(r, ranks, box, rate, burst);
      sqz::CalibrationOptions o;
      o.quick = true;
      curves[r] = sqz::measureRingStepCurve(t, o);
    });
  for (auto& th : threads) th.join();
  return curves[0];
}

TEST(Calibration, SmallMessagesArePricedAtTheShapersRateNotItsBurst) {
  // 32 Mbit/s with the testbed's burst (DESIGN.md section 5): 64 repeats of
  // a 1 KiB message, what the calibration used to time, fit in the burst
  // four times over.
  const double rate = 4e6, burst = 256 << 10;
  const sqz::LinkCurve curve = shapedCurve(3, rate, burst);
  ASSERT_GE(curve.points().size(), 5u);
  for (const sqz::LinkCurve::Point& p : curve.points()) {
    if (p.bytes > (1 << 20)) break;
    const double steady = p.bytes / rate;
    // Inside the burst a 1 KiB step takes a thread handoff (microseconds to
    // tens of them), well under 0.8 x its 256 us at the rate.
    EXPECT_GE(p.seconds, 0.8 * steady) << p.bytes << " bytes";
    EXPECT_LE(p.seconds, 2.0 * steady + 2e-3) << p.bytes << " bytes";
  }
}

}  // namespace
