// The geometry of a ring allreduce, apart from any transport or buffer (as
// UCC's coll_patterns/ring.h): which segment a rank sends and receives at
// each step, how a segment splits into pipelined chunks, and the tag slot of
// every (step, chunk). RingAllreduce and CodecRingAllreduce run it.
//
// The count elements split into N segments (EvenSplit). Reduce-scatter
// step s (0 <= s < N-1): rank r sends segment r - s to its right neighbour
// and receives segment r - s - 1 from its left one, adds it, and forwards
// it at step s + 1; after N-1 steps rank r holds the sum of segment r + 1
// (its owned segment). Allgather step s: rank r sends segment r + 1 - s
// (its own first, then what it received the step before) and receives
// segment r - s. Segments are taken mod N. The step numbers of the
// allgather's tags continue after the reduce-scatter's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "collectives/collective_args.h"

namespace sqz {

class RingSchedule {
 public:
  // chunkElements: the pipelining granularity (0: one chunk per segment),
  // raised where a segment would need more chunks than a tag slot holds.
  // Throws sqzInvalidUsage for more ranks than the ring's slots hold.
  RingSchedule(int nranks, int rank, size_t count, size_t chunkElements = 0);

  int right() const { return (rank_ + 1) % nranks_; }
  int left() const { return (rank_ + nranks_ - 1) % nranks_; }
  // Steps in each phase (reduce-scatter, allgather): N - 1.
  size_t steps() const { return static_cast<size_t>(nranks_ - 1); }

  size_t reduceScatterSend(size_t step) const { return segment(0 - static_cast<long>(step)); }
  size_t reduceScatterRecv(size_t step) const { return segment(-1 - static_cast<long>(step)); }
  size_t owned() const { return segment(1); }
  size_t allgatherSend(size_t step) const { return segment(1 - static_cast<long>(step)); }
  size_t allgatherRecv(size_t step) const { return segment(0 - static_cast<long>(step)); }

  size_t segmentOffset(size_t s) const { return segments_.offset(s); }
  size_t segmentLength(size_t s) const { return segments_.length(s); }
  size_t maxSegment() const { return segments_.length(0); }
  // Chunks of segment s (at least one, possibly empty); offsets count from
  // the start of the buffer.
  size_t chunks(size_t s) const;
  size_t chunkOffset(size_t s, size_t c) const;
  size_t chunkLength(size_t s, size_t c) const;

  // Tag slot of chunk c at step t, counted over both phases (reduce-scatter
  // 0..N-2, allgather N-1..2N-3); tag_slots.h reserves the range.
  uint32_t slot(size_t step, size_t chunk) const;
  size_t allgatherStep(size_t s) const { return steps() + s; }

 private:
  // Segment rank + delta, mod N.
  size_t segment(long delta) const {
    const long n = nranks_;
    return static_cast<size_t>((((rank_ + delta) % n) + n) % n);
  }

  int nranks_, rank_;
  EvenSplit segments_;
  size_t chunkElements_;
};

}  // namespace sqz
