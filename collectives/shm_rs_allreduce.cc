#include "collectives/shm_rs_allreduce.h"

#include <algorithm>
#include <cstring>

#include "common/dtype.h"
#include "common/error.h"

namespace sqz {
namespace {

// The call's header where the caller agreed on it before (or a rank inside
// sqzJoin runs it): what it is, no more.
CallHeader headerOf(const AllreduceArgs& a) {
  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  h.count = a.count;
  h.dtype = a.type;
  h.op = a.op;
  return h;
}

}  // namespace

void ShmRsAllreduce::run(const AllreduceArgs& a) {
  const int n = segment_.size(), me = segment_.rank();
  const size_t element = dataTypeSize(a.type), bytes = a.count * element;
  if (!fits(bytes, n)) {
    SQZ_CHECK(a.header == nullptr, "%zu bytes do not fit a large shared-memory slot: the call's header cannot ride "
              "with them", bytes);
    runInPieces(a);
    return;
  }
  CallHeader mine = a.header ? *a.header : headerOf(a);
  mine.rankFlags |= kFlagDataInSegment;
  // The slot is not output: a mismatched call fails below before any is written.
  std::memcpy(segment_.largeSlot(me), a.send, bytes);
  const uint64_t flags = round_.run(transport_, a.seq, mine, nullptr, 0, a.deadline, &segment_);
  parts_.resize(n);
  if (flags & kFlagPeersJoined) {
    // A rank inside sqzJoin makes one exchange per call, so this call takes
    // one too: every rank reduces everything, a joined rank's part as zeros.
    zeros_.assign(bytes, 0);
    for (int r = 0; r < n; ++r)
      parts_[r] = round_.headers()[r].kind == static_cast<uint32_t>(CollectiveKind::kJoin)
                      ? zeros_.data()
                       : segment_.largeSlot(r);
    reduction_.run(parts_, a);
    return;
  }
  reduceShare(a, a.count);
  segment_.exchange(transport_, mine, nullptr, 0, a.deadline);
  std::memcpy(a.recv, segment_.resultArea(), bytes);
}

void ShmRsAllreduce::reduceShare(const AllreduceArgs& a, size_t count) {
  const int n = segment_.size();
  const EvenSplit split{count, static_cast<size_t>(n)};
  const size_t offset = split.offset(segment_.rank()) * dataTypeSize(a.type);
  AllreduceArgs share = a;
  share.count = split.length(segment_.rank());
  share.recv = segment_.resultArea() + offset;
  if (share.count == 0) return;
  parts_.resize(n);
  for (int r = 0; r < n; ++r) parts_[r] = segment_.largeSlot(r) + offset;
  reduction_.run(parts_, share);
}

void ShmRsAllreduce::runInPieces(const AllreduceArgs& a) {
  const int n = segment_.size(), me = segment_.rank();
  const size_t element = dataTypeSize(a.type);
  const size_t pieceCount = ShmSegment::largeSlotBytes(n) / element;
  SQZ_CHECK(pieceCount > 0, "a large shared-memory slot holds no element");
  // The call was agreed before (Communicator::agreeOnPlan), so the headers
  // of these exchanges are not compared; a rank inside sqzJoin runs this
  // too, with zeros, so every rank makes the same exchanges.
  const CallHeader piece = headerOf(a);
  const auto* send = static_cast<const unsigned char*>(a.send);
  auto* recv = static_cast<unsigned char*>(a.recv);
  for (size_t first = 0; first < a.count; first += pieceCount) {
    const size_t count = std::min(pieceCount, a.count - first);
    // Every rank has finished reading the slots of the previous piece: it
    // published the exchange after its reduction.
    std::memcpy(segment_.largeSlot(me), send + first * element, count * element);
    segment_.exchange(transport_, piece, nullptr, 0, a.deadline);
    reduceShare(a, count);
    // The next piece's shares overwrite the result area only after the next
    // exchange, which every rank reaches after copying this piece out.
    segment_.exchange(transport_, piece, nullptr, 0, a.deadline);
    std::memcpy(recv + first * element, segment_.resultArea(), count * element);
  }
}

}  // namespace sqz
