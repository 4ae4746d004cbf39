// A toy exact allreduce, to show what adding an algorithm takes (issue 21):
// every rank sends its buffer to rank 0, which reduces the N buffers in rank
// order and sends the result back. Not for use: N-1 messages into one rank.
#pragma once

#include <cstring>
#include <vector>

#include "collectives/collective_args.h"
#include "collectives/reduce_ops.h"
#include "collectives/tag_slots.h"
#include "common/dtype.h"
#include "transport/transport.h"

namespace sqz {

class ToyAllreduce {
 public:
  explicit ToyAllreduce(Transport& transport) : transport_(transport) {}

  void run(const AllreduceArgs& a) {
    const int n = transport_.size(), me = transport_.rank();
    const size_t bytes = a.count * dataTypeSize(a.type);
    const Tag tag{a.seq, tags::kRound};  // to rank 0 and back: the senders differ
    std::vector<RequestId> reqs;
    if (me != 0) {
      reqs.push_back(transport_.postSend(0, tag, a.send, bytes));
      transport_.waitAll(reqs, a.deadline);
      reqs.push_back(transport_.postRecv(0, tag, a.recv, bytes));
      transport_.waitAll(reqs, a.deadline);
      return;
    }
    const sqzDataType_t accType = accumulationType(a.type);
    parts_.resize(n * bytes);
    sum_.resize(a.count * dataTypeSize(accType));
    wide_.resize(sum_.size());
    if (bytes > 0) std::memcpy(parts_.data(), a.send, bytes);
    for (int r = 1; r < n; ++r) reqs.push_back(transport_.postRecv(r, tag, parts_.data() + r * bytes, bytes));
    transport_.waitAll(reqs, a.deadline);
    widen(parts_.data(), a.type, sum_.data(), a.count);
    for (int r = 1; r < n; ++r) {
      widen(parts_.data() + r * bytes, a.type, wide_.data(), a.count);
      reduceInto(sum_.data(), wide_.data(), a.count, accType, a.op);
    }
    if (a.op == sqzAvg) divideInPlace(sum_.data(), accType, a.count, n);
    narrow(sum_.data(), a.type, a.recv, a.count);
    for (int r = 1; r < n; ++r) reqs.push_back(transport_.postSend(r, tag, a.recv, bytes));
    transport_.waitAll(reqs, a.deadline);
  }

 private:
  Transport& transport_;
  std::vector<unsigned char> parts_, sum_, wide_;
};

}  // namespace sqz
