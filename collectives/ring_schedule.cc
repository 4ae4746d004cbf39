#include "collectives/ring_schedule.h"

#include <algorithm>

#include "collectives/tag_slots.h"
#include "common/error.h"

namespace sqz {

RingSchedule::RingSchedule(int nranks, int rank, size_t count, size_t chunkElements)
    : nranks_(nranks), rank_(rank), segments_{count, static_cast<size_t>(nranks)} {
  SQZ_CHECK(nranks >= 1 && rank >= 0 && rank < nranks, "rank %d of %d", rank, nranks);
  SQZ_REQUIRE(2 * static_cast<size_t>(nranks - 1) <= tags::kRingMaxSteps, sqzInvalidUsage,
              "ring allreduce supports at most %u ranks", tags::kRingMaxSteps / 2 + 1);
  constexpr size_t kMaxChunks = size_t(1) << tags::kRingChunkBits;
  const size_t longest = maxSegment();
  chunkElements_ = chunkElements == 0 ? std::max<size_t>(1, longest) : chunkElements;
  chunkElements_ = std::max(chunkElements_, (longest + kMaxChunks - 1) / kMaxChunks);
}

size_t RingSchedule::chunks(size_t s) const {
  return std::max<size_t>(1, (segmentLength(s) + chunkElements_ - 1) / chunkElements_);
}

size_t RingSchedule::chunkOffset(size_t s, size_t c) const {
  return segmentOffset(s) + std::min(c * chunkElements_, segmentLength(s));
}

size_t RingSchedule::chunkLength(size_t s, size_t c) const {
  const size_t len = segmentLength(s);
  return std::min(len, (c + 1) * chunkElements_) - std::min(len, c * chunkElements_);
}

uint32_t RingSchedule::slot(size_t step, size_t chunk) const {
  return static_cast<uint32_t>((step << tags::kRingChunkBits) | chunk);
}

}  // namespace sqz
