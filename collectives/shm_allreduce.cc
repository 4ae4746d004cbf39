#include "collectives/shm_allreduce.h"

#include "common/dtype.h"
#include "common/error.h"

namespace sqz {

void ShmAllreduce::run(const AllreduceArgs& a) {
  const size_t bytes = a.count * dataTypeSize(a.type);
  SQZ_CHECK(fits(bytes), "%zu bytes do not fit a shared-memory slot", bytes);
  // A call agreed on before (its header went alone) checks the same
  // arguments again: every exchange through the segment carries a header.
  CallHeader agreed;
  agreed.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  agreed.count = a.count;
  agreed.dtype = a.type;
  agreed.op = a.op;
  // Ranks inside sqzJoin send their header alone; their part reads as zeros.
  round_.run(transport_, a.seq, a.header ? *a.header : agreed, a.send, bytes, a.deadline, &segment_);
  parts_.resize(segment_.size());
  for (int r = 0; r < segment_.size(); ++r) parts_[r] = round_.payload(r);
  reduction_.run(parts_, a);
}

}  // namespace sqz
