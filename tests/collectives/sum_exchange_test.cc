// SumExchange (collectives/sum_exchange.h): what the tuner's statistics
// travel through. Three ranks as threads over an in-memory transport: the
// sum must be bitwise the same on every rank, within bfloat16's rounding of
// each contribution of the exact sum, and take the bytes it says it takes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "collectives/sum_exchange.h"
#include "harness/memory_transport.h"

namespace {

constexpr int kRanks = 3;
constexpr size_t kValues = 785;

// Rank r's array: mixed signs and magnitudes from 1e-30 to 1e6, a zero, an
// integer count, one value beyond any float, and (optionally) a NaN.
std::vector<double> contribution(int r, bool withNaN) {
  std::mt19937_64 rng(100 + r);
  std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-30, 6);
  std::vector<double> v(kValues);
  for (double& x : v) x = mantissa(rng) * std::pow(10.0, exponent(rng));
  v[0] = 0.0;
  v[1] = 7840.0;  // an element count
  v[2] = 1.0;     // a rank count: exact in bfloat16
  v[3] = 1e300;   // saturates
  if (withNaN && r == 1) v[4] = std::numeric_limits<double>::quiet_NaN();
  return v;
}

std::vector<std::vector<double>> exchange(bool withNaN) {
  sqz::test::MemoryMailbox box;
  std::vector<std::vector<double>> sums(kRanks, std::vector<double>(kValues));
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      sqz::test::MemoryTransport t(r, kRanks, box);
      const std::vector<double> mine = contribution(r, withNaN);
      sqz::SumExchange x;
      x.start(t, 5, 9, mine.data(), kValues);
      x.finish(sqz::Deadline(30.0), sums[r].data());
    });
  for (auto& th : threads) th.join();
  return sums;
}

TEST(SumExchange, EveryRankGetsTheSameSumWithinBfloat16RoundingOfEachPart) {
  EXPECT_EQ(sqz::SumExchange::wireBytes(kValues), 2 * kValues);  // the receive takes exactly this many bytes
  const auto sums = exchange(false);
  for (int r = 1; r < kRanks; ++r)
    for (size_t i = 0; i < kValues; ++i)
      ASSERT_EQ(std::memcmp(&sums[r][i], &sums[0][i], sizeof(double)), 0) << "rank " << r << ", value " << i;
  std::vector<std::vector<double>> parts;
  for (int r = 0; r < kRanks; ++r) parts.push_back(contribution(r, false));
  size_t checked = 0;
  for (size_t i = 0; i < kValues; ++i) {
    if (i == 3) continue;
    double exact = 0, magnitude = 0;
    for (int r = 0; r < kRanks; ++r) {
      exact += parts[r][i];
      magnitude += std::fabs(parts[r][i]);
    }
    const double bound = (std::ldexp(1.0, -8) + std::ldexp(1.0, -23)) * magnitude;
    EXPECT_LE(std::fabs(sums[0][i] - exact), bound) << "value " << i;
    // A result that drops one rank's part, or halves the sum, is outside
    // it wherever that part is more than the bound.
    const double part = parts[kRanks - 1][i];
    if (std::fabs(part) > 2 * bound) {
      EXPECT_GT(std::fabs((sums[0][i] - part) - exact), bound) << "value " << i;
      ++checked;
    }
    if (std::fabs(exact) > 4 * bound) {
      EXPECT_GT(std::fabs(sums[0][i] / 2 - exact), bound) << "value " << i;
    }
  }
  EXPECT_GT(checked, kValues / 4);  // the dropped-part check is not vacuous
  EXPECT_EQ(sums[0][0], 0.0);
  EXPECT_EQ(sums[0][2], 3.0);                                     // counts of ranks stay exact
  EXPECT_NEAR(sums[0][1], 3 * 7840.0, 3 * 7840.0 * std::ldexp(1.0, -8));
  EXPECT_TRUE(std::isfinite(sums[0][3]));                         // beyond range: saturated, not inf
  EXPECT_GT(sums[0][3], 1e38);
}

TEST(SumExchange, ANaNOnOneRankReachesEverySum) {
  const auto sums = exchange(true);
  for (int r = 0; r < kRanks; ++r) EXPECT_TRUE(std::isnan(sums[r][4])) << "rank " << r;
}

}  // namespace
