// The rendezvous: every rank sends (secret, rank, nranks, blob) to the root;
// once all nranks have arrived, the root sends every rank the blobs of all
// ranks, in rank order. Connections without the secret are dropped.
#pragma once

#include <cstdint>
#include <vector>

#include "src/bootstrap/unique_id.h"

namespace sqz {

using Blob = std::vector<uint8_t>;

// Starts a root in a background thread listening on `listenAddr` (port 0 =
// ephemeral); returns the address ranks should connect to. The root serves
// one rendezvous and exits (or gives up after SQZ_TIMEOUT).
SocketAddress startRendezvousRoot(const SocketAddress& listenAddr, const Secret& secret);

// Joins the rendezvous of `id` as `rank` of `nranks`; returns all blobs.
std::vector<Blob> rendezvous(const BootstrapId& id, int rank, int nranks, const Blob& mine,
                             const Deadline& deadline);

}  // namespace sqz
