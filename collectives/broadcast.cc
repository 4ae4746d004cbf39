#include "collectives/broadcast.h"

#include <cstring>
#include <vector>

#include "collectives/tag_slots.h"

namespace sqz {

void Broadcast::run(const void* send, void* recv, size_t bytes, int root, uint32_t seq, const Deadline& deadline) {
  const int n = transport_.size(), me = transport_.rank();
  Tag tag{seq, tags::kRound};
  std::vector<RequestId> reqs;
  if (me == root) {
    if (send != recv) std::memcpy(recv, send, bytes);
    transport_.groupStart();
    for (int r = 0; r < n; ++r)
      if (r != root) reqs.push_back(transport_.postSend(r, tag, recv, bytes));
    transport_.groupEnd();
  } else {
    reqs.push_back(transport_.postRecv(root, tag, recv, bytes));
  }
  transport_.waitAll(reqs, deadline);
}

}  // namespace sqz
