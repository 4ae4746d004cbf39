// SumExchange (collectives/sum_exchange.h): what the tuner's statistics
// travel through. Three ranks as threads over an in-memory transport: the
// sum must be bitwise the same on every rank, within bfloat16's rounding of
// each contribution of the exact sum, and take the bytes it says it takes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "collectives/sum_exchange.h"
#include "common/error.h"
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

struct Exchanged {
  std::vector<std::vector<double>> sums;
  std::vector<size_t> sent;     // bytes each rank sent each peer
  std::vector<size_t> largest;  // largestWireBytes() on each rank
};

Exchanged exchange(const std::vector<std::vector<double>>& parts) {
  sqz::test::MemoryMailbox box;
  Exchanged e;
  e.sums.assign(kRanks, std::vector<double>(kValues));
  e.sent.assign(kRanks, 0);
  e.largest.assign(kRanks, 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      sqz::test::MemoryTransport t(r, kRanks, box);
      sqz::SumExchange x;
      e.sent[r] = x.start(t, 5, 9, parts[r].data(), kValues);
      x.finish(sqz::Deadline(30.0), e.sums[r].data());
      e.largest[r] = x.largestWireBytes();
    });
  for (auto& th : threads) th.join();
  return e;
}

std::vector<std::vector<double>> exchange(bool withNaN) {
  std::vector<std::vector<double>> parts;
  for (int r = 0; r < kRanks; ++r) parts.push_back(contribution(r, withNaN));
  return exchange(parts).sums;
}

TEST(SumExchange, EveryRankGetsTheSameSumWithinBfloat16RoundingOfEachPart) {
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

// The statistics' histogram and residual sketch are mostly zeros: those go
// as the length of their runs, and the rest as bfloat16 (2 bytes a value).
TEST(SumExchange, RunsOfZerosCostTheirLengthNotTheirValues) {
  std::vector<std::vector<double>> parts;
  for (int r = 0; r < kRanks; ++r) {
    auto v = contribution(r, false);
    std::fill(v.begin() + 100 + 50 * r, v.end(), 0.0);  // rank r: 100 + 50 r values, then zeros
    parts.push_back(v);
  }
  const Exchanged e = exchange(parts);
  for (int r = 0; r < kRanks; ++r) {
    // Two groups: v[0]'s zero and the 99 + 50 r values after it, then the
    // zeros to the end.
    EXPECT_EQ(e.sent[r], sizeof(uint16_t) * (2 + 99 + 50 * r + 2)) << "rank " << r;
    EXPECT_EQ(e.largest[r], e.sent[kRanks - 1]) << "rank " << r;  // the largest, alike on every rank
    for (size_t i = 0; i < kValues; ++i) {
      double exact = 0, magnitude = 0;
      for (int k = 0; k < kRanks; ++k) {
        exact += parts[k][i];
        magnitude += std::fabs(parts[k][i]);
      }
      if (i == 3) continue;  // saturated
      EXPECT_LE(std::fabs(e.sums[r][i] - exact), (std::ldexp(1.0, -8) + std::ldexp(1.0, -23)) * magnitude)
          << "rank " << r << ", value " << i;
      if (i >= 100 + 50 * (kRanks - 1)) {
        EXPECT_EQ(e.sums[r][i], 0.0);
      }
    }
  }
  EXPECT_LT(e.sent[0], sqz::SumExchange::maxWireBytes(kValues) / 3);
}

// A peer whose message is not the code of the array: every other rank
// fails with sqzInvalidUsage and says which rank, instead of summing
// garbage or reading past the message.
TEST(SumExchange, AMalformedMessageFailsTheExchangeWithItsSender) {
  sqz::test::MemoryMailbox box;
  std::vector<std::string> errors(kRanks);
  std::vector<sqzResult_t> codes(kRanks, sqzSuccess);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      sqz::test::MemoryTransport t(r, kRanks, box);
      if (r == 2) {
        // Counts that claim more values than the array holds.
        const uint16_t bad[] = {700, 200, 1, 2, 3};
        for (int peer = 0; peer < 2; ++peer) t.wait(t.postSend(peer, sqz::Tag{5, 9}, bad, sizeof bad), sqz::Deadline(30.0));
        return;
      }
      const std::vector<double> mine = contribution(r, false);
      std::vector<double> sum(kValues);
      sqz::SumExchange x;
      x.start(t, 5, 9, mine.data(), kValues);
      try {
        x.finish(sqz::Deadline(30.0), sum.data());
      } catch (const sqz::Error& err) {
        codes[r] = err.code();
        errors[r] = err.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(codes[r], sqzInvalidUsage) << "rank " << r;
    EXPECT_NE(errors[r].find("malformed statistics from rank 2"), std::string::npos) << errors[r];
  }
}

TEST(SumExchange, ANaNOnOneRankReachesEverySum) {
  const auto sums = exchange(true);
  for (int r = 0; r < kRanks; ++r) EXPECT_TRUE(std::isnan(sums[r][4])) << "rank " << r;
}

}  // namespace
