#include "collectives/allgather.h"

#include <cstring>
#include <vector>

namespace sqz {

void AllGather::run(const void* send, void* recv, size_t bytes, uint32_t seq, const Deadline& deadline) {
  const int n = transport_.size(), me = transport_.rank();
  unsigned char* out = static_cast<unsigned char*>(recv);
  if (out + me * bytes != send) std::memmove(out + me * bytes, send, bytes);
  Tag tag{seq, 0};
  std::vector<RequestId> reqs;
  transport_.groupStart();
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(transport_.postRecv(r, tag, out + r * bytes, bytes));
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(transport_.postSend(r, tag, out + me * bytes, bytes));
  transport_.groupEnd();
  transport_.waitAll(reqs, deadline);
}

}  // namespace sqz
