// How a rank meets its peers in an all-to-all round.
#pragma once

#include <cstddef>
#include <vector>

#include "transport/transport.h"

namespace sqz {

// f(peer) for every rank other than `me` of `n`, starting at me + 1: at any
// moment the N ranks send to N different peers instead of all to the same
// one.
template <typename F>
void forEachPeer(int me, int n, F&& f) {
  for (int k = 1; k < n; ++k) f((me + k) % n);
}

// One gathering round in one group: a receive of `bytes` from every peer r
// into blocks + r * bytes, and a send of `mine` (`bytes`) to every peer,
// all under `tag`; the requests go to the end of `reqs`.
inline void postPeerExchange(Transport& t, Tag tag, const void* mine, void* blocks, size_t bytes,
                             std::vector<RequestId>& reqs) {
  const int n = t.size(), me = t.rank();
  unsigned char* at = static_cast<unsigned char*>(blocks);
  t.groupStart();
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(t.postRecv(r, tag, at + r * bytes, bytes));
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(t.postSend(r, tag, mine, bytes));
  t.groupEnd();
}

// The same round for messages of varying size: a receive of up to
// `capacity` bytes from every peer r into blocks + r * capacity (its size
// lands in received[r]), and a send of `mine` (`bytes`) to every peer.
inline void postPeerExchangeUpTo(Transport& t, Tag tag, const void* mine, size_t bytes, void* blocks,
                                 size_t capacity, size_t* received, std::vector<RequestId>& reqs) {
  const int n = t.size(), me = t.rank();
  unsigned char* at = static_cast<unsigned char*>(blocks);
  t.groupStart();
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(t.postRecvUpTo(r, tag, at + r * capacity, capacity, &received[r]));
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(t.postSend(r, tag, mine, bytes));
  t.groupEnd();
}

}  // namespace sqz
