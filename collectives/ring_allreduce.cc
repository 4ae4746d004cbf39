#include "collectives/ring_allreduce.h"

#include <algorithm>
#include <cstring>

#include "collectives/reduce_ops.h"
#include "common/dtype.h"
#include "common/error.h"

namespace sqz {
namespace {

// Slots: step in the high bits, chunk in the low bits, 24 bits in total.
constexpr uint32_t kChunkBits = 12;
constexpr size_t kMaxChunks = size_t(1) << kChunkBits;

size_t mod(long a, long n) { return static_cast<size_t>(((a % n) + n) % n); }

}  // namespace

RingAllreduce::RingAllreduce(Transport& transport, size_t chunkBytes)
    : transport_(transport), chunkBytes_(std::max<size_t>(chunkBytes, 4096)) {}

void RingAllreduce::run(const AllreduceArgs& a) {
  const int n = transport_.size(), me = transport_.rank();
  const size_t elem = dataTypeSize(a.type);
  const sqzDataType_t accType = accumulationType(a.type);
  const size_t accElem = dataTypeSize(accType);
  const bool widened = accType != a.type;
  SQZ_REQUIRE(2 * static_cast<size_t>(n) < (size_t(1) << (24 - kChunkBits)), sqzInvalidUsage,
              "ring allreduce supports at most 2047 ranks");

  // The reduce-scatter runs on `acc` (the receive buffer itself, or fp32
  // accumulators for 16-bit types); the allgather on the receive buffer.
  unsigned char* out = static_cast<unsigned char*>(a.recv);
  unsigned char* acc = out;
  if (widened) {
    work_.resize(a.count * accElem);
    acc = work_.data();
    widen(a.send, a.type, acc, a.count);
  } else if (a.send != a.recv) {
    std::memcpy(out, a.send, a.count * elem);
  }
  if (n == 1) {
    if (a.op == sqzAvg) divideInPlace(acc, accType, a.count, 1);
    if (widened) narrow(acc, a.type, out, a.count);
    return;
  }

  const EvenSplit seg{a.count, static_cast<size_t>(n)};
  const size_t maxSeg = seg.length(0);
  // Chunk length in elements: at least chunkBytes, and few enough chunks to fit the tag.
  size_t chunkElems = std::max<size_t>(1, chunkBytes_ / accElem);
  chunkElems = std::max(chunkElems, (maxSeg + kMaxChunks - 1) / kMaxChunks);
  auto chunks = [&](size_t s) { return std::max<size_t>(1, (seg.length(s) + chunkElems - 1) / chunkElems); };
  auto chunkOff = [&](size_t s, size_t c) { return seg.offset(s) + std::min(c * chunkElems, seg.length(s)); };
  auto chunkLen = [&](size_t s, size_t c) {
    return std::min(seg.length(s), (c + 1) * chunkElems) - std::min(seg.length(s), c * chunkElems);
  };
  auto tag = [&](size_t step, size_t c) { return Tag{a.seq, static_cast<uint32_t>((step << kChunkBits) | c)}; };

  const int right = static_cast<int>(mod(me + 1, n)), left = static_cast<int>(mod(me - 1, n));
  staging_.resize(2 * maxSeg * accElem);
  std::vector<RequestId> sends, recvs;

  // Reduce-scatter: at step s, send segment (me - s) and receive segment
  // (me - s - 1), which is added into acc and forwarded at step s + 1.
  auto postRsRecvs = [&](size_t s, std::vector<RequestId>& ids) {
    size_t r = mod(me - static_cast<long>(s) - 1, n);
    unsigned char* buf = staging_.data() + (s % 2) * maxSeg * accElem;
    for (size_t c = 0; c < chunks(r); ++c)
      ids.push_back(transport_.postRecv(left, tag(s, c), buf + (chunkOff(r, c) - seg.offset(r)) * accElem,
                                        chunkLen(r, c) * accElem));
  };
  {
    size_t t = mod(me, n);
    postRsRecvs(0, recvs);
    for (size_t c = 0; c < chunks(t); ++c)
      sends.push_back(transport_.postSend(right, tag(0, c), acc + chunkOff(t, c) * accElem, chunkLen(t, c) * accElem));
  }
  const size_t rsSteps = static_cast<size_t>(n - 1);
  for (size_t s = 0; s < rsSteps; ++s) {
    std::vector<RequestId> next;
    if (s + 1 < rsSteps) postRsRecvs(s + 1, next);
    size_t r = mod(me - static_cast<long>(s) - 1, n);
    const unsigned char* buf = staging_.data() + (s % 2) * maxSeg * accElem;
    for (size_t c = 0; c < chunks(r); ++c) {
      transport_.wait(recvs[c], a.deadline);
      size_t off = chunkOff(r, c), len = chunkLen(r, c);
      reduceInto(acc + off * accElem, buf + (off - seg.offset(r)) * accElem, len, accType, a.op);
      if (s + 1 < rsSteps) sends.push_back(transport_.postSend(right, tag(s + 1, c), acc + off * accElem, len * accElem));
    }
    recvs.swap(next);
  }
  transport_.waitAll(sends, a.deadline);

  // This rank now owns the fully reduced segment (me + 1).
  const size_t own = mod(me + 1, n);
  if (a.op == sqzAvg) divideInPlace(acc + seg.offset(own) * accElem, accType, seg.length(own), n);
  if (widened) narrow(acc + seg.offset(own) * accElem, a.type, out + seg.offset(own) * elem, seg.length(own));

  // Allgather of final values in the user's type: at step s, send segment
  // (me + 1 - s), receive segment (me - s) straight into the output.
  const size_t agSteps = static_cast<size_t>(n - 1);
  std::vector<std::vector<RequestId>> agRecvs(agSteps);
  for (size_t s = 0; s < agSteps; ++s) {
    size_t r = mod(me - static_cast<long>(s), n);
    for (size_t c = 0; c < chunks(r); ++c)
      agRecvs[s].push_back(transport_.postRecv(left, tag(rsSteps + s, c), out + chunkOff(r, c) * elem,
                                               chunkLen(r, c) * elem));
  }
  for (size_t c = 0; c < chunks(own); ++c)
    sends.push_back(transport_.postSend(right, tag(rsSteps, c), out + chunkOff(own, c) * elem, chunkLen(own, c) * elem));
  for (size_t s = 0; s < agSteps; ++s) {
    size_t r = mod(me - static_cast<long>(s), n);
    for (size_t c = 0; c < chunks(r); ++c) {
      transport_.wait(agRecvs[s][c], a.deadline);
      if (s + 1 < agSteps)
        sends.push_back(transport_.postSend(right, tag(rsSteps + s + 1, c), out + chunkOff(r, c) * elem,
                                            chunkLen(r, c) * elem));
    }
  }
  transport_.waitAll(sends, a.deadline);
}

}  // namespace sqz
