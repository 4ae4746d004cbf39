#include "src/bootstrap/unique_id.h"

#include <netinet/in.h>

#include <cstring>

#include "common/error.h"
#include "src/bootstrap/hmac.h"

namespace sqz {
namespace {

constexpr uint32_t kIdMagic = 0x53515a31;  // "SQZ1"
constexpr uint16_t kIdVersion = 1;

// Byte offsets inside sqzUniqueId::internal.
constexpr size_t kOffMagic = 0, kOffVersion = 4, kOffFamily = 6, kOffPort = 8, kOffAddr = 12,
                 kOffScope = 28, kOffSecret = 32;

}  // namespace

void BootstrapId::pack(sqzUniqueId* out) const {
  std::memset(out->internal, 0, sizeof out->internal);
  char* p = out->internal;
  std::memcpy(p + kOffMagic, &kIdMagic, 4);
  std::memcpy(p + kOffVersion, &kIdVersion, 2);
  uint16_t family = root.storage.ss_family;
  std::memcpy(p + kOffFamily, &family, 2);
  uint16_t port = static_cast<uint16_t>(root.port());
  std::memcpy(p + kOffPort, &port, 2);
  if (family == AF_INET) {
    std::memcpy(p + kOffAddr, &reinterpret_cast<const sockaddr_in*>(&root.storage)->sin_addr, 4);
  } else {
    auto* a6 = reinterpret_cast<const sockaddr_in6*>(&root.storage);
    std::memcpy(p + kOffAddr, &a6->sin6_addr, 16);
    std::memcpy(p + kOffScope, &a6->sin6_scope_id, 4);
  }
  std::memcpy(p + kOffSecret, secret.data(), secret.size());
}

BootstrapId BootstrapId::unpack(const sqzUniqueId& in) {
  const char* p = in.internal;
  uint32_t magic;
  uint16_t version, family, port;
  std::memcpy(&magic, p + kOffMagic, 4);
  std::memcpy(&version, p + kOffVersion, 2);
  std::memcpy(&family, p + kOffFamily, 2);
  std::memcpy(&port, p + kOffPort, 2);
  SQZ_REQUIRE(magic == kIdMagic, sqzInvalidArgument,
              "not a sqz unique id (was it made by sqzGetUniqueId and passed unchanged?)");
  SQZ_REQUIRE(version == kIdVersion, sqzInvalidArgument, "unique id version %u, expected %u", version,
              kIdVersion);
  SQZ_REQUIRE(family == AF_INET || family == AF_INET6, sqzInvalidArgument, "unique id: bad address family");
  BootstrapId id;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&id.root.storage);
    a->sin_family = AF_INET;
    std::memcpy(&a->sin_addr, p + kOffAddr, 4);
    id.root.length = sizeof(sockaddr_in);
  } else {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&id.root.storage);
    a6->sin6_family = AF_INET6;
    std::memcpy(&a6->sin6_addr, p + kOffAddr, 16);
    std::memcpy(&a6->sin6_scope_id, p + kOffScope, 4);
    id.root.length = sizeof(sockaddr_in6);
  }
  id.root.setPort(port);
  std::memcpy(id.secret.data(), p + kOffSecret, id.secret.size());
  return id;
}

Secret randomSecret() {
  Secret s{};
  randomBytes(s.data(), s.size());
  return s;
}

Secret secretFromString(const std::string& text) {
  const Digest d = sha256({"sqz secret v1", Bytes(text.data(), text.size())});
  Secret s{};
  std::memcpy(s.data(), d.data(), s.size());
  return s;
}

uint64_t seedFromSecret(const Secret& secret) {
  const Digest d = hmacSha256(secret.data(), secret.size(), {"sqz codec seed"});
  uint64_t seed = 0;
  std::memcpy(&seed, d.data(), sizeof seed);
  return seed;
}

}  // namespace sqz
