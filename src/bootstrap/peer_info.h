// What each rank tells the others at the rendezvous: how to reach it (its
// UCX worker address), which node it is on, and whether UCX can use RDMA
// from there. Packed as length-prefixed fields into the rendezvous blob.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/bootstrap/handshake.h"

namespace sqz {

struct PeerInfo {
  std::vector<uint8_t> ucxAddress;
  std::string nodeId;
  bool rdma = false;
  std::string machineId;  // localMachineId(): ranks sharing cores
};

Blob packPeerInfo(const PeerInfo& info);
// Throws sqzRemoteError naming `rank` for a malformed record.
PeerInfo unpackPeerInfo(const Blob& blob, int rank);

}  // namespace sqz
