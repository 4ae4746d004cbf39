#include "collectives/direct_allreduce.h"

#include <cstring>

#include "collectives/peers.h"
#include "collectives/tag_slots.h"
#include "common/dtype.h"

namespace sqz {

void DirectAllreduce::run(const AllreduceArgs& a) {
  const int n = transport_.size(), me = transport_.rank();
  const size_t bytes = a.count * dataTypeSize(a.type);

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
  reduction_.run(parts, a);
}

}  // namespace sqz
