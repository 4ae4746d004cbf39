// The rendezvous: every rank authenticates to the root and the root to it
// (src/bootstrap/handshake.h: challenge-response over the shared secret,
// which never travels), the rank sends its blob, and once all nranks have
// arrived and agree on nranks the root sends every rank the blobs of all
// ranks, in rank order. Any disagreement among authenticated ranks (nranks,
// two claims on one rank) is sent to each of them as the error it is.
//
// The root is built to survive strangers: unauthenticated connections are
// capped (the oldest is dropped to admit a new one), each must finish its
// hello within a few seconds, and when file descriptors run out the root
// drops the oldest stranger and backs off instead of spinning; a rank whose
// connection was dropped before it was answered connects again.
#pragma once

#include <cstdint>
#include <vector>

#include "src/bootstrap/handshake.h"
#include "src/bootstrap/unique_id.h"

namespace sqz {

// Starts a root in a background thread listening on `listenAddr` (port 0 =
// ephemeral); returns the address ranks should connect to. The root serves
// one rendezvous and exits (or gives up after SQZ_TIMEOUT). expectedNranks:
// the size every rank must claim, or 0 to take it from rank 0's hello.
SocketAddress startRendezvousRoot(const SocketAddress& listenAddr, const Secret& secret, int expectedNranks = 0);

// Joins the rendezvous of `id` as `rank` of `nranks`; returns all blobs.
std::vector<Blob> rendezvous(const BootstrapId& id, int rank, int nranks, const Blob& mine,
                             const Deadline& deadline);

}  // namespace sqz
