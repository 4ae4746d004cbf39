#include "src/bootstrap/hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace sqz {
namespace {

std::vector<uint8_t> concat(std::initializer_list<Bytes> parts) {
  size_t n = 0;
  for (const Bytes& p : parts) n += p.size;
  std::vector<uint8_t> all;
  all.reserve(n);
  for (const Bytes& p : parts) {
    const auto* b = static_cast<const uint8_t*>(p.data);
    all.insert(all.end(), b, b + p.size);
  }
  return all;
}

}  // namespace

Bytes::Bytes(const char* label) : data(label), size(std::strlen(label) + 1) {}

// OpenSSL keeps state per calling thread (its error queue, made by the
// fetches behind HMAC and EVP_Digest). The rendezvous root's detached
// thread may still run when the process exits, after OpenSSL's exit-time
// cleanup, which then leaks that state (the ASan run's leak check saw its
// 904-byte error queue): each digest releases the calling thread's state
// before it returns.
struct ReleaseThreadState {
  ~ReleaseThreadState() { OPENSSL_thread_stop(); }
};

Digest hmacSha256(const uint8_t* key, size_t keyBytes, std::initializer_list<Bytes> parts) {
  const std::vector<uint8_t> msg = concat(parts);
  Digest out{};
  unsigned len = 0;
  bool ok;
  {
    ReleaseThreadState release;
    ok = HMAC(EVP_sha256(), key, static_cast<int>(keyBytes), msg.data(), msg.size(), out.data(), &len) != nullptr;
  }
  if (!ok || len != out.size()) fail(sqzSystemError, "HMAC-SHA256 failed (OpenSSL)");
  return out;
}

Digest sha256(std::initializer_list<Bytes> parts) {
  const std::vector<uint8_t> msg = concat(parts);
  Digest out{};
  unsigned len = 0;
  bool ok;
  {
    ReleaseThreadState release;
    ok = EVP_Digest(msg.data(), msg.size(), out.data(), &len, EVP_sha256(), nullptr) != 0;
  }
  if (!ok || len != out.size()) fail(sqzSystemError, "SHA-256 failed (OpenSSL)");
  return out;
}

// The kernel's CSPRNG (what OpenSSL seeds from) rather than RAND_bytes:
// OpenSSL keeps a DRBG per calling thread, and the rendezvous root's
// detached thread may still run when the process exits, after OpenSSL's
// exit-time cleanup, which then leaks that thread's DRBG (the ASan run's
// leak check saw it).
void randomBytes(void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const ssize_t got = getrandom(p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) fail(sqzSystemError, "getrandom: %s", std::strerror(errno));
    p += got;
    n -= static_cast<size_t>(got);
  }
}

bool equalConstantTime(const void* a, const void* b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

}  // namespace sqz
