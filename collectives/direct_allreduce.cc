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
  std::vector<const unsigned char*>& parts = parts_;
  parts.resize(n);
  if (a.header) {
    round_.run(transport_, a.seq, *a.header, a.send, bytes, a.deadline);
    for (int r = 0; r < n; ++r) parts[r] = round_.payload(r);
  } else {
    gathered_.resize(n * bytes);
    reqs_.clear();  // a failed call left its ids here (cancelled since)
    postPeerExchange(transport_, Tag{a.seq, tags::kRound}, a.send, gathered_.data(), bytes, reqs_);
    transport_.waitAll(reqs_, a.deadline);
    for (int r = 0; r < n; ++r) parts[r] = gathered_.data() + r * bytes;
  }
  parts[me] = static_cast<const unsigned char*>(a.send);

  // Reduce in rank order 0..n-1: straight into the output when the type
  // needs no widening and writing the output cannot clobber a part not yet
  // read (out of place, or in place on rank 0, whose part is read first);
  // else into an accumulator, then the output once.
  const bool widened = accType != a.type;
  const bool intoOutput = !widened && n > 1 && (a.recv != a.send || me == 0);
  unsigned char* acc = static_cast<unsigned char*>(a.recv);
  int next = 1;
  if (intoOutput) {
    reduceTo(acc, parts[0], parts[1], a.count, accType, a.op);
    next = 2;
  } else {
    acc_.resize(accBytes);
    acc = acc_.data();
    widen(parts[0], a.type, acc, a.count);
  }
  wide_.resize(widened ? accBytes : 0);
  for (int r = next; r < n; ++r) {
    const unsigned char* src = parts[r];
    if (widened) {
      widen(src, a.type, wide_.data(), a.count);
      src = wide_.data();
    }
    reduceInto(acc, src, a.count, accType, a.op);
  }
  if (a.op == sqzAvg) divideInPlace(acc, accType, a.count, n);
  if (!intoOutput) narrow(acc, a.type, a.recv, a.count);
}

}  // namespace sqz
