// The order in which a rank visits its peers in an all-to-all round: the
// next rank first, then the one after, so that at any moment the N ranks
// send to N different peers instead of all to the same one.
#pragma once

namespace sqz {

// f(peer) for every rank other than `me` of `n`, starting at me + 1.
template <typename F>
void forEachPeer(int me, int n, F&& f) {
  for (int k = 1; k < n; ++k) f((me + k) % n);
}

}  // namespace sqz
