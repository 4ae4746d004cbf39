// The bootstrap's cryptography, all from OpenSSL's libcrypto: HMAC-SHA256
// for the challenge-response of the rendezvous, SHA-256, random nonces, and
// constant-time comparison. Nothing here is hand-written cryptography.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace sqz {

using Digest = std::array<uint8_t, 32>;

// One input of a MAC or hash: bytes, or a label.
struct Bytes {
  const void* data;
  size_t size;
  Bytes(const void* d, size_t n) : data(d), size(n) {}
  Bytes(const char* label);  // NOLINT: a NUL-terminated label, its NUL included (labels cannot run together)
};

// HMAC-SHA256 under `key` of the concatenated parts.
Digest hmacSha256(const uint8_t* key, size_t keyBytes, std::initializer_list<Bytes> parts);
Digest sha256(std::initializer_list<Bytes> parts);

// Bytes from the kernel's CSPRNG (getrandom); throws sqzSystemError when it cannot supply them.
void randomBytes(void* out, size_t n);

// Constant-time equality (CRYPTO_memcmp), so a stranger learns nothing from timing.
bool equalConstantTime(const void* a, const void* b, size_t n);

}  // namespace sqz
