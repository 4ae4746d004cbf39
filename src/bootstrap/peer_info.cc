#include "src/bootstrap/peer_info.h"

#include <cstring>

#include "common/error.h"

namespace sqz {

Blob packPeerInfo(const PeerInfo& info) {
  Blob b;
  auto put = [&b](const void* p, uint32_t n) {
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  put(info.ucxAddress.data(), static_cast<uint32_t>(info.ucxAddress.size()));
  put(info.nodeId.data(), static_cast<uint32_t>(info.nodeId.size()));
  const uint8_t r = info.rdma ? 1 : 0;
  put(&r, 1);
  put(info.machineId.data(), static_cast<uint32_t>(info.machineId.size()));
  return b;
}

PeerInfo unpackPeerInfo(const Blob& b, int rank) {
  size_t pos = 0;
  auto get = [&](std::vector<uint8_t>* out) {
    uint32_t n = 0;
    SQZ_REQUIRE(b.size() - pos >= 4, sqzRemoteError, "malformed bootstrap record from rank %d", rank);
    std::memcpy(&n, b.data() + pos, 4);
    pos += 4;
    SQZ_REQUIRE(b.size() - pos >= n, sqzRemoteError, "malformed bootstrap record from rank %d", rank);
    out->assign(b.begin() + pos, b.begin() + pos + n);
    pos += n;
  };
  PeerInfo info;
  std::vector<uint8_t> node, r, machine;
  get(&info.ucxAddress);
  get(&node);
  get(&r);
  get(&machine);
  SQZ_REQUIRE(r.size() == 1 && pos == b.size(), sqzRemoteError, "malformed bootstrap record from rank %d", rank);
  info.nodeId.assign(node.begin(), node.end());
  info.rdma = r[0] != 0;
  info.machineId.assign(machine.begin(), machine.end());
  return info;
}

}  // namespace sqz
