#include "collectives/shm_rs_allreduce.h"

#include <cstring>

#include "common/dtype.h"
#include "common/error.h"

namespace sqz {

void ShmRsAllreduce::run(const AllreduceArgs& a) {
  const int n = segment_.size(), me = segment_.rank();
  const size_t element = dataTypeSize(a.type), bytes = a.count * element;
  SQZ_CHECK(fits(bytes, n), "%zu bytes do not fit a large shared-memory slot", bytes);
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

}  // namespace sqz
