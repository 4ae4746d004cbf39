#include "collectives/ring_allreduce.h"

#include <algorithm>
#include <cstring>

#include "collectives/reduce_ops.h"
#include "collectives/ring_schedule.h"
#include "common/dtype.h"

namespace sqz {

RingAllreduce::RingAllreduce(Transport& transport, size_t chunkBytes)
    : transport_(transport), chunkBytes_(std::max<size_t>(chunkBytes, 4096)) {}

void RingAllreduce::run(const AllreduceArgs& a) {
  const int n = transport_.size(), me = transport_.rank();
  const size_t elem = dataTypeSize(a.type);
  const sqzDataType_t accType = accumulationType(a.type);
  const size_t accElem = dataTypeSize(accType);
  const bool widened = accType != a.type;
  const RingSchedule ring(n, me, a.count, std::max<size_t>(1, chunkBytes_ / accElem));

  // The reduce-scatter runs on `acc` (the receive buffer itself, or fp32
  // accumulators for 16-bit types); the allgather on the receive buffer.
  // Out of place, this rank's contribution is read from the send buffer
  // (`mine`) where acc is first written: no copy of the whole input first.
  unsigned char* out = static_cast<unsigned char*>(a.recv);
  unsigned char* acc = out;
  const unsigned char* mine = out;
  if (widened) {
    work_.resize(a.count * accElem);
    acc = work_.data();
    widen(a.send, a.type, acc, a.count);
    mine = acc;
  } else if (a.send != a.recv) {
    if (n == 1) std::memcpy(out, a.send, a.count * elem);
    mine = static_cast<const unsigned char*>(a.send);
  }
  if (n == 1) {
    if (a.op == sqzAvg) divideInPlace(acc, accType, a.count, 1);
    if (widened) narrow(acc, a.type, out, a.count);
    return;
  }

  auto tag = [&](size_t step, size_t c) { return Tag{a.seq, ring.slot(step, c)}; };
  std::vector<RequestId> sends, recvs;
  auto sendChunk = [&](size_t step, const unsigned char* base, size_t elemBytes, size_t seg, size_t c) {
    sends.push_back(transport_.postSend(ring.right(), tag(step, c), base + ring.chunkOffset(seg, c) * elemBytes,
                                        ring.chunkLength(seg, c) * elemBytes));
  };
  // Two staging halves of one segment each: step s receives into half s % 2
  // while the other half's chunks are still being added.
  staging_.resize(2 * ring.maxSegment() * accElem);
  auto staged = [&](size_t s, size_t seg, size_t c) {
    return staging_.data() + ((s % 2) * ring.maxSegment() + ring.chunkOffset(seg, c) - ring.segmentOffset(seg)) * accElem;
  };
  auto postReduceScatterRecvs = [&](size_t s, std::vector<RequestId>& ids) {
    const size_t seg = ring.reduceScatterRecv(s);
    for (size_t c = 0; c < ring.chunks(seg); ++c)
      ids.push_back(transport_.postRecv(ring.left(), tag(s, c), staged(s, seg, c), ring.chunkLength(seg, c) * accElem));
  };

  // Reduce-scatter: receive a segment, add it to this rank's part into
  // acc, forward it. Every segment but the first one sent is received here
  // (so written into acc); the allgather overwrites that first one.
  postReduceScatterRecvs(0, recvs);
  for (size_t c = 0; c < ring.chunks(ring.reduceScatterSend(0)); ++c)
    sendChunk(0, mine, accElem, ring.reduceScatterSend(0), c);
  for (size_t s = 0; s < ring.steps(); ++s) {
    std::vector<RequestId> next;
    const bool forward = s + 1 < ring.steps();
    if (forward) postReduceScatterRecvs(s + 1, next);
    const size_t seg = ring.reduceScatterRecv(s);
    for (size_t c = 0; c < ring.chunks(seg); ++c) {
      transport_.wait(recvs[c], a.deadline);
      const size_t at = ring.chunkOffset(seg, c) * accElem;
      reduceTo(acc + at, mine + at, staged(s, seg, c), ring.chunkLength(seg, c), accType, a.op);
      if (forward) sendChunk(s + 1, acc, accElem, seg, c);
    }
    recvs.swap(next);
  }
  transport_.waitAll(sends, a.deadline);

  // This rank now holds the final sum of its owned segment.
  const size_t own = ring.owned();
  const size_t ownOff = ring.segmentOffset(own), ownLen = ring.segmentLength(own);
  if (a.op == sqzAvg) divideInPlace(acc + ownOff * accElem, accType, ownLen, n);
  if (widened) narrow(acc + ownOff * accElem, a.type, out + ownOff * elem, ownLen);

  // Allgather of final values in the user's type, straight into the output.
  std::vector<std::vector<RequestId>> gathered(ring.steps());
  for (size_t s = 0; s < ring.steps(); ++s) {
    const size_t seg = ring.allgatherRecv(s);
    for (size_t c = 0; c < ring.chunks(seg); ++c)
      gathered[s].push_back(transport_.postRecv(ring.left(), tag(ring.allgatherStep(s), c),
                                                out + ring.chunkOffset(seg, c) * elem, ring.chunkLength(seg, c) * elem));
  }
  for (size_t c = 0; c < ring.chunks(own); ++c) sendChunk(ring.allgatherStep(0), out, elem, own, c);
  for (size_t s = 0; s < ring.steps(); ++s) {
    const size_t seg = ring.allgatherRecv(s);
    for (size_t c = 0; c < ring.chunks(seg); ++c) {
      transport_.wait(gathered[s][c], a.deadline);
      if (s + 1 < ring.steps()) sendChunk(ring.allgatherStep(s + 1), out, elem, seg, c);
    }
  }
  transport_.waitAll(sends, a.deadline);
}

}  // namespace sqz
