#include "collectives/direct_allreduce.h"

#include <cstring>

#include "collectives/peers.h"
#include "collectives/reduce_ops.h"
#include "collectives/tag_slots.h"
#include "common/dtype.h"

namespace sqz {

void DirectAllreduce::run(const AllreduceArgs& a) {
  const int n = transport_.size(), me = transport_.rank();
  const size_t bytes = a.count * dataTypeSize(a.type);
  const sqzDataType_t accType = accumulationType(a.type);
  const size_t accBytes = a.count * dataTypeSize(accType);

  // Every rank's contribution, this rank's straight from its send buffer.
  std::vector<const unsigned char*> parts(n);
  if (a.header) {
    round_.run(transport_, a.seq, *a.header, a.send, bytes, a.deadline);
    for (int r = 0; r < n; ++r) parts[r] = round_.payload(r);
  } else {
    gathered_.resize(n * bytes);
    std::vector<RequestId> reqs;
    postPeerExchange(transport_, Tag{a.seq, tags::kRound}, a.send, gathered_.data(), bytes, reqs);
    transport_.waitAll(reqs, a.deadline);
    for (int r = 0; r < n; ++r) parts[r] = gathered_.data() + r * bytes;
  }
  parts[me] = static_cast<const unsigned char*>(a.send);

  // Reduce in rank order into an accumulator (the output may be this
  // rank's own input), then write the output once.
  acc_.resize(accBytes);
  wide_.resize(accType != a.type ? accBytes : 0);
  widen(parts[0], a.type, acc_.data(), a.count);
  for (int r = 1; r < n; ++r) {
    const unsigned char* src = parts[r];
    if (accType != a.type) {
      widen(src, a.type, wide_.data(), a.count);
      src = wide_.data();
    }
    reduceInto(acc_.data(), src, a.count, accType, a.op);
  }
  if (a.op == sqzAvg) divideInPlace(acc_.data(), accType, a.count, n);
  narrow(acc_.data(), a.type, a.recv, a.count);
}

}  // namespace sqz
