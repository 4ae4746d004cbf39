// libFuzzer target for the bootstrap's parsers: whatever the bytes, each
// check of a rendezvous message (src/bootstrap/handshake.h), the split of
// a reply's blob table and the peer-info record either accepts them or
// refuses them (a reason, or sqz::Error); the sanitizers catch anything
// else. Input: one selector byte (which parser; for the table, also nranks),
// then the bytes as they would arrive.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "src/bootstrap/handshake.h"
#include "src/bootstrap/peer_info.h"

namespace {

sqz::HandshakeKeys fixedKeys() {
  sqz::HandshakeKeys k;
  for (size_t i = 0; i < k.secret.size(); ++i) k.secret[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < 16; ++i) k.rankNonce[i] = static_cast<uint8_t>(i + 100), k.rootNonce[i] = static_cast<uint8_t>(i * 3);
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  // The copy makes the message exactly its length for AddressSanitizer.
  const std::vector<uint8_t> msg(data + 1, data + size);
  const uint8_t* p = msg.empty() ? nullptr : msg.data();
  static const sqz::HandshakeKeys keys = fixedKeys();
  try {
    switch (selector % 7) {
      case 0: {
        sqz::ClientHello h;
        sqz::checkClientHello(p, msg.size(), &h);
        break;
      }
      case 1: {
        sqz::RootProof r;
        sqz::checkRootProof(p, msg.size(), keys.secret, keys.rankNonce, &r);
        break;
      }
      case 2: {
        // A hello, then (when it held) the blob it vouches for.
        sqz::RankHello h;
        const size_t n = std::min(msg.size(), sizeof(sqz::RankHello));
        if (!sqz::checkRankHello(p, n, keys, &h)) sqz::checkBlob(h, p + n, msg.size() - n);
        break;
      }
      case 3: {
        sqz::RootReply r;
        const size_t n = std::min(msg.size(), sizeof(sqz::RootReply));
        const int nranks = selector / 7 % 8;
        if (!sqz::checkRootReplyHeader(p, n, nranks, &r)) sqz::checkRootReplyBody(r, keys, p + n, msg.size() - n);
        break;
      }
      case 4: {
        std::vector<sqz::Blob> blobs;
        sqz::unpackBlobTable(p, msg.size(), selector / 7 % 8, &blobs);
        break;
      }
      case 5: {
        sqz::Blob blob(msg.begin(), msg.end());
        sqz::unpackPeerInfo(blob, 3);
        break;
      }
      default: {
        // A peer-info record round trip must be exact.
        sqz::PeerInfo info;
        info.ucxAddress = msg;
        info.nodeId = std::string(msg.begin(), msg.end());
        info.rdma = selector & 0x80;
        info.machineId = std::string(msg.rbegin(), msg.rend());
        const sqz::PeerInfo back = sqz::unpackPeerInfo(sqz::packPeerInfo(info), 0);
        if (back.ucxAddress != info.ucxAddress || back.nodeId != info.nodeId || back.rdma != info.rdma ||
            back.machineId != info.machineId) __builtin_trap();
        break;
      }
    }
  } catch (const sqz::Error&) {
  }
  return 0;
}
