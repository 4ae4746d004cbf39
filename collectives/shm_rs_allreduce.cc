#include "collectives/shm_rs_allreduce.h"

#include <algorithm>
#include <cstring>

#include "common/dtype.h"
#include "common/error.h"

namespace sqz {

void ShmRsAllreduce::run(const AllreduceArgs& a) {
  const int n = segment_.size(), me = segment_.rank();
  const size_t element = dataTypeSize(a.type), bytes = a.count * element;
  if (!fits(bytes, n)) {
    SQZ_CHECK(a.header == nullptr, "%zu bytes do not fit a large shared-memory slot: the call's header cannot ride "
              "with them", bytes);
    runInPieces(a);
    return;
  }
  CallHeader agreed;
  agreed.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  agreed.count = a.count;
  agreed.dtype = a.type;
  agreed.op = a.op;
  CallHeader mine = a.header ? *a.header : agreed;
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
  const EvenSplit split{a.count, static_cast<size_t>(n)};
  const size_t offset = split.offset(me) * element;
  AllreduceArgs share = a;
  share.count = split.length(me);
  share.recv = segment_.resultArea() + offset;
  if (share.count > 0) {
    for (int r = 0; r < n; ++r) parts_[r] = segment_.largeSlot(r) + offset;
    reduction_.run(parts_, share);
  }
  segment_.exchange(transport_, mine, nullptr, 0, a.deadline);
  std::memcpy(a.recv, segment_.resultArea(), bytes);
}

void ShmRsAllreduce::runInPieces(const AllreduceArgs& a) {
  const int n = segment_.size(), me = segment_.rank();
  const size_t element = dataTypeSize(a.type);
  const size_t pieceCount = ShmSegment::largeSlotBytes(n) / element;
  SQZ_CHECK(pieceCount > 0, "a large shared-memory slot holds no element");
  // The call was agreed before (Communicator::agreeOnPlan), so the headers
  // of these exchanges are not compared; a rank inside sqzJoin runs this
  // too, with zeros, so every rank makes the same exchanges.
  CallHeader piece;
  piece.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  piece.count = a.count;
  piece.dtype = a.type;
  piece.op = a.op;
  parts_.resize(n);
  const auto* send = static_cast<const unsigned char*>(a.send);
  auto* recv = static_cast<unsigned char*>(a.recv);
  for (size_t first = 0; first < a.count; first += pieceCount) {
    const size_t count = std::min(pieceCount, a.count - first);
    // Every rank has finished reading the slots of the previous piece: it
    // published the exchange after its reduction.
    std::memcpy(segment_.largeSlot(me), send + first * element, count * element);
    segment_.exchange(transport_, piece, nullptr, 0, a.deadline);
    const EvenSplit split{count, static_cast<size_t>(n)};
    const size_t offset = split.offset(me) * element;
    AllreduceArgs share = a;
    share.count = split.length(me);
    share.recv = segment_.resultArea() + offset;
    if (share.count > 0) {
      for (int r = 0; r < n; ++r) parts_[r] = segment_.largeSlot(r) + offset;
      reduction_.run(parts_, share);
    }
    // The next piece's shares overwrite the result area only after the next
    // exchange, which every rank reaches after copying this piece out.
    segment_.exchange(transport_, piece, nullptr, 0, a.deadline);
    std::memcpy(recv + first * element, segment_.resultArea(), count * element);
  }
}

}  // namespace sqz
