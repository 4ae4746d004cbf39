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

  // Layout: n contributions in the user's type, then one accumulator
  // (aligned for its wider type).
  const size_t accOffset = (n * bytes + 15) & ~size_t(15);
  gathered_.resize(accOffset + accBytes);
  unsigned char* parts = gathered_.data();
  unsigned char* acc = parts + accOffset;
  std::memcpy(parts + me * bytes, a.send, bytes);
  std::vector<RequestId> reqs;
  postPeerExchange(transport_, Tag{a.seq, tags::kRound}, parts + me * bytes, parts, bytes, reqs);
  transport_.waitAll(reqs, a.deadline);

  widen(parts, a.type, acc, a.count);
  std::vector<unsigned char> wide(accType != a.type ? accBytes : 0);
  for (int r = 1; r < n; ++r) {
    const unsigned char* src = parts + r * bytes;
    if (accType != a.type) {
      widen(src, a.type, wide.data(), a.count);
      src = wide.data();
    }
    reduceInto(acc, src, a.count, accType, a.op);
  }
  if (a.op == sqzAvg) divideInPlace(acc, accType, a.count, n);
  narrow(acc, a.type, a.recv, a.count);
}

}  // namespace sqz
