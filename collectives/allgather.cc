#include "collectives/allgather.h"

#include <cstring>
#include <vector>

#include "collectives/peers.h"
#include "collectives/tag_slots.h"

namespace sqz {

void AllGather::run(const void* send, void* recv, size_t bytes, uint32_t seq, const Deadline& deadline) {
  const int me = transport_.rank();
  unsigned char* out = static_cast<unsigned char*>(recv);
  if (out + me * bytes != send) std::memmove(out + me * bytes, send, bytes);
  std::vector<RequestId> reqs;
  postPeerExchange(transport_, Tag{seq, tags::kRound}, out + me * bytes, out, bytes, reqs);
  transport_.waitAll(reqs, deadline);
}

}  // namespace sqz
