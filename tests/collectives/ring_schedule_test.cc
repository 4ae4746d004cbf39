// RingSchedule on its own: segments and chunks tile the buffer, what a rank
// sends at a step is what its right neighbour expects, the reduce-scatter
// leaves every segment's full sum with exactly one owner, the allgather
// brings every segment to every rank, and no two messages share a tag.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "collectives/ring_schedule.h"
#include "collectives/tag_slots.h"
#include "common/error.h"

namespace sqz {
namespace {

std::vector<RingSchedule> ringOf(int n, size_t count, size_t chunkElements) {
  std::vector<RingSchedule> ring;
  for (int r = 0; r < n; ++r) ring.emplace_back(n, r, count, chunkElements);
  return ring;
}

class RingScheduleShapes : public ::testing::TestWithParam<std::tuple<int, size_t, size_t>> {};

TEST_P(RingScheduleShapes, SegmentsAndChunksTileTheBuffer) {
  auto [n, count, chunk] = GetParam();
  const RingSchedule ring(n, 0, count, chunk);
  // The requested chunk (a whole segment for 0), raised to fit the slots.
  const size_t maxChunks = size_t(1) << tags::kRingChunkBits;
  const size_t granularity =
      std::max(chunk == 0 ? std::max<size_t>(1, ring.maxSegment()) : chunk, (ring.maxSegment() + maxChunks - 1) / maxChunks);
  size_t next = 0;
  for (int s = 0; s < n; ++s) {
    EXPECT_EQ(ring.segmentOffset(s), next) << "segment " << s;
    EXPECT_LE(ring.segmentLength(s), ring.maxSegment());
    EXPECT_LE(ring.maxSegment() - ring.segmentLength(s), 1u) << "segments differ by at most one element";
    size_t inSegment = ring.segmentOffset(s);
    ASSERT_GE(ring.chunks(s), 1u);
    EXPECT_LE(ring.chunks(s), size_t(1) << tags::kRingChunkBits);
    for (size_t c = 0; c < ring.chunks(s); ++c) {
      EXPECT_EQ(ring.chunkOffset(s, c), inSegment) << "segment " << s << " chunk " << c;
      // Every chunk but a segment's last is exactly the granularity.
      if (c + 1 < ring.chunks(s)) {
        EXPECT_EQ(ring.chunkLength(s, c), granularity) << "segment " << s << " chunk " << c;
      } else {
        EXPECT_LE(ring.chunkLength(s, c), granularity) << "segment " << s << " chunk " << c;
      }
      inSegment += ring.chunkLength(s, c);
    }
    EXPECT_EQ(inSegment, ring.segmentOffset(s) + ring.segmentLength(s)) << "chunks of segment " << s;
    next += ring.segmentLength(s);
  }
  EXPECT_EQ(next, count);
}

// Plays the schedule on every rank at once: a set of contributions per
// (rank, segment), moved as the schedule says.
TEST_P(RingScheduleShapes, ReduceScatterThenAllgatherGivesEveryRankEverySum) {
  auto [n, count, chunk] = GetParam();
  std::vector<RingSchedule> ring = ringOf(n, count, chunk);
  std::vector<std::vector<std::set<int>>> held(n, std::vector<std::set<int>>(n));
  for (int r = 0; r < n; ++r)
    for (int s = 0; s < n; ++s) held[r][s] = {r};
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(ring[ring[r].right()].left(), r);
    EXPECT_EQ(ring[r].steps(), static_cast<size_t>(n - 1));
  }
  for (size_t step = 0; step < ring[0].steps(); ++step) {
    std::vector<std::vector<std::set<int>>> next = held;
    for (int r = 0; r < n; ++r) {
      const int to = ring[r].right();
      const size_t seg = ring[r].reduceScatterSend(step);
      ASSERT_EQ(ring[to].reduceScatterRecv(step), seg) << "rank " << to << " step " << step;
      if (step > 0) {
        EXPECT_EQ(seg, ring[r].reduceScatterRecv(step - 1)) << "forwards what it received";
      }
      next[to][seg].insert(held[r][seg].begin(), held[r][seg].end());
    }
    held = next;
  }
  std::set<size_t> owned;
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(held[r][ring[r].owned()].size(), static_cast<size_t>(n)) << "rank " << r << " owns a partial sum";
    owned.insert(ring[r].owned());
  }
  EXPECT_EQ(owned.size(), static_cast<size_t>(n)) << "each segment has one owner";

  // Allgather: final sums only, starting from the owners.
  std::vector<std::set<size_t>> gathered(n);
  for (int r = 0; r < n; ++r) gathered[r] = {ring[r].owned()};
  for (size_t step = 0; step < ring[0].steps(); ++step) {
    std::vector<std::set<size_t>> next = gathered;
    for (int r = 0; r < n; ++r) {
      const int to = ring[r].right();
      const size_t seg = ring[r].allgatherSend(step);
      ASSERT_TRUE(gathered[r].count(seg)) << "rank " << r << " sends segment " << seg << " before it has it";
      ASSERT_EQ(ring[to].allgatherRecv(step), seg) << "rank " << to << " step " << step;
      next[to].insert(seg);
    }
    gathered = next;
  }
  for (int r = 0; r < n; ++r) EXPECT_EQ(gathered[r].size(), static_cast<size_t>(n)) << "rank " << r;
}

TEST_P(RingScheduleShapes, EveryMessageOfARankHasItsOwnSlot) {
  auto [n, count, chunk] = GetParam();
  const RingSchedule ring(n, n / 2, count, chunk);
  std::set<uint32_t> slots;
  size_t messages = 0;
  for (size_t s = 0; s < ring.steps(); ++s) {
    const size_t rs = ring.reduceScatterSend(s), ag = ring.allgatherSend(s);
    for (size_t c = 0; c < ring.chunks(rs); ++c, ++messages) slots.insert(ring.slot(s, c));
    for (size_t c = 0; c < ring.chunks(ag); ++c, ++messages) slots.insert(ring.slot(ring.allgatherStep(s), c));
  }
  EXPECT_EQ(slots.size(), messages);
  if (!slots.empty()) {
    EXPECT_LT(*slots.rbegin(), tags::kRingEnd);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, RingScheduleShapes,
    ::testing::Values(std::make_tuple(1, 10, 0), std::make_tuple(2, 0, 0), std::make_tuple(3, 2, 0),
                      std::make_tuple(3, 7, 2), std::make_tuple(4, 1000, 0), std::make_tuple(5, 4099, 1024),
                      std::make_tuple(7, 100003, 1), std::make_tuple(8, 1 << 20, 4096)),
    [](const auto& info) {
      return "n" + std::to_string(std::get<0>(info.param)) + "_c" + std::to_string(std::get<1>(info.param)) +
             "_chunk" + std::to_string(std::get<2>(info.param));
    });

TEST(RingSchedule, OneChunkPerSegmentByDefault) {
  const RingSchedule ring(4, 1, 1003);
  for (size_t s = 0; s < 4; ++s) {
    EXPECT_EQ(ring.chunks(s), 1u);
    EXPECT_EQ(ring.chunkLength(s, 0), ring.segmentLength(s));
  }
  // Rank 1 of 4: sends 1, 0, 3 and receives 0, 3, 2; owns 2.
  EXPECT_EQ(ring.right(), 2);
  EXPECT_EQ(ring.left(), 0);
  EXPECT_EQ(ring.reduceScatterSend(0), 1u);
  EXPECT_EQ(ring.reduceScatterRecv(0), 0u);
  EXPECT_EQ(ring.reduceScatterRecv(2), 2u);
  EXPECT_EQ(ring.owned(), 2u);
  EXPECT_EQ(ring.allgatherSend(0), 2u);
  EXPECT_EQ(ring.allgatherRecv(0), 1u);
}

TEST(RingSchedule, ChunksAreRaisedToFitTheSlots) {
  // One-element chunks of a 2^20-element segment would need 2^20 slots.
  const RingSchedule ring(2, 0, 2 << 20, 1);
  EXPECT_EQ(ring.chunks(0), size_t(1) << tags::kRingChunkBits);
  EXPECT_EQ(ring.slot(1, 5), (1u << tags::kRingChunkBits) | 5u);
}

TEST(RingSchedule, TooManyRanksForTheSlotsIsAnError) {
  EXPECT_NO_THROW(RingSchedule(2047, 0, 100));
  try {
    RingSchedule(2048, 0, 100);
    ADD_FAILURE() << "2048 ranks accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzInvalidUsage);
  }
}

}  // namespace
}  // namespace sqz
