// What a sqzUniqueId holds: where the rendezvous root listens and the
// secret a rank must present to it. Packed into the opaque 128 bytes.
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

// 16 bytes from the kernel's CSPRNG.
Secret randomSecret();
// A secret derived from a shared string (SQZ_SECRET), identical on all ranks.
Secret secretFromString(const std::string& text);

// Constant-time comparison, so a stranger learns nothing from timing.
bool secretsEqual(const uint8_t* a, const uint8_t* b);

}  // namespace sqz
