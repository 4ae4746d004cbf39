// What a sqzUniqueId holds: where the rendezvous root listens and the
// secret that a rank and the root prove to each other they know (it never
// travels; src/bootstrap/handshake.h). Packed into the opaque 128 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "sqz.h"
#include "src/bootstrap/socket.h"

namespace sqz {

using Secret = std::array<uint8_t, 16>;

struct BootstrapId {
  SocketAddress root;
  Secret secret{};

  void pack(sqzUniqueId* out) const;
  // Throws sqzInvalidArgument when the bytes are not a sqz unique id.
  static BootstrapId unpack(const sqzUniqueId& in);
};

// 16 bytes from OpenSSL's CSPRNG.
Secret randomSecret();
// A secret derived from a shared string (SQZ_SECRET), identical on all ranks
// (SHA-256 of the text).
Secret secretFromString(const std::string& text);
// The codecs' RNG seed when SQZ_SEED is unset: derived from the secret by
// HMAC, so that payloads (which reveal the seed to whoever reads them)
// reveal nothing about the secret.
uint64_t seedFromSecret(const Secret& secret);

}  // namespace sqz
