#include "src/bootstrap/handshake.h"

#include <cstring>

namespace sqz {
namespace {

constexpr uint32_t kClientMagic = 0x52515a53;  // "SQZR"
constexpr uint32_t kProofMagic = 0x50515a53;   // "SQZP"
constexpr uint32_t kHelloMagic = 0x48515a53;   // "SQZH"
constexpr uint32_t kReplyMagic = 0x41515a53;   // "SQZA"

Digest rootMac(const HandshakeKeys& k) {
  return hmacSha256(k.secret.data(), k.secret.size(),
                    {"sqz root proof", Bytes(k.rankNonce.data(), 16), Bytes(k.rootNonce.data(), 16)});
}

Digest helloMac(const HandshakeKeys& k, const RankHello& h) {
  return hmacSha256(k.secret.data(), k.secret.size(),
                    {"sqz rank hello", Bytes(k.rankNonce.data(), 16), Bytes(k.rootNonce.data(), 16),
                     Bytes(&h.rank, 4), Bytes(&h.nranks, 4), Bytes(&h.blobBytes, 4), Bytes(h.blobDigest, 32)});
}

Digest replyMac(const HandshakeKeys& k, uint32_t status, uint64_t bodyBytes, const uint8_t* body) {
  return hmacSha256(k.secret.data(), k.secret.size(),
                    {"sqz root reply", Bytes(k.rankNonce.data(), 16), Bytes(k.rootNonce.data(), 16),
                     Bytes(&status, 4), Bytes(&bodyBytes, 8), Bytes(body, static_cast<size_t>(bodyBytes))});
}

template <class T>
bool load(const uint8_t* bytes, size_t n, T* out) {
  if (!bytes || n != sizeof(T)) return false;
  std::memcpy(out, bytes, sizeof(T));
  return true;
}

}  // namespace

ClientHello makeClientHello(const Nonce& rankNonce) {
  ClientHello h{};
  h.magic = kClientMagic;
  h.version = kHandshakeVersion;
  std::memcpy(h.rankNonce, rankNonce.data(), 16);
  return h;
}

RootProof makeRootProof(const HandshakeKeys& k) {
  RootProof p{};
  p.magic = kProofMagic;
  p.version = kHandshakeVersion;
  std::memcpy(p.rootNonce, k.rootNonce.data(), 16);
  const Digest mac = rootMac(k);
  std::memcpy(p.mac, mac.data(), 32);
  return p;
}

RankHello makeRankHello(const HandshakeKeys& k, int rank, int nranks, const Blob& blob) {
  RankHello h{};
  h.magic = kHelloMagic;
  h.rank = rank;
  h.nranks = nranks;
  h.blobBytes = static_cast<uint32_t>(blob.size());
  const Digest d = sha256({Bytes(blob.data(), blob.size())});
  std::memcpy(h.blobDigest, d.data(), 32);
  const Digest mac = helloMac(k, h);
  std::memcpy(h.mac, mac.data(), 32);
  return h;
}

RootReply makeRootReply(const HandshakeKeys& k, uint32_t status, const std::vector<uint8_t>& body) {
  RootReply r{};
  r.magic = kReplyMagic;
  r.status = status;
  r.bodyBytes = body.size();
  const Digest mac = replyMac(k, status, r.bodyBytes, body.data());
  std::memcpy(r.mac, mac.data(), 32);
  return r;
}

std::vector<uint8_t> packBlobTable(const std::vector<const Blob*>& blobs) {
  std::vector<uint8_t> out;
  for (const Blob* b : blobs) {
    const uint32_t n = static_cast<uint32_t>(b->size());
    const auto* p = reinterpret_cast<const uint8_t*>(&n);
    out.insert(out.end(), p, p + 4);
    out.insert(out.end(), b->begin(), b->end());
  }
  return out;
}

const char* checkClientHello(const uint8_t* bytes, size_t n, ClientHello* out) {
  if (!load(bytes, n, out)) return "short hello";
  if (out->magic != kClientMagic) return "not a sqz rendezvous hello";
  if (out->version != kHandshakeVersion) return "another version of the sqz rendezvous protocol";
  return nullptr;
}

const char* checkRootProof(const uint8_t* bytes, size_t n, const Secret& secret, const Nonce& rankNonce,
                           RootProof* out) {
  if (!load(bytes, n, out)) return "short answer";
  if (out->magic != kProofMagic) return "not a sqz rendezvous root";
  if (out->version != kHandshakeVersion) return "another version of the sqz rendezvous protocol";
  HandshakeKeys k;
  k.secret = secret;
  k.rankNonce = rankNonce;
  std::memcpy(k.rootNonce.data(), out->rootNonce, 16);
  const Digest mac = rootMac(k);
  if (!equalConstantTime(mac.data(), out->mac, 32)) return "the root does not know the secret";
  return nullptr;
}

const char* checkRankHello(const uint8_t* bytes, size_t n, const HandshakeKeys& k, RankHello* out) {
  if (!load(bytes, n, out)) return "short hello";
  if (out->magic != kHelloMagic) return "not a sqz rank hello";
  const Digest mac = helloMac(k, *out);
  if (!equalConstantTime(mac.data(), out->mac, 32)) return "wrong secret (or a replayed hello)";
  // Authenticated from here on: what remains are a real rank's mistakes.
  if (out->nranks <= 0 || out->rank < 0 || out->rank >= out->nranks) return "invalid rank or size";
  if (out->blobBytes > kMaxBlobBytes) return "oversized hello";
  return nullptr;
}

const char* checkBlob(const RankHello& h, const uint8_t* blob, size_t n) {
  if (n != h.blobBytes) return "blob size differs from the hello's";
  const Digest d = sha256({Bytes(blob, n)});
  if (!equalConstantTime(d.data(), h.blobDigest, 32)) return "blob differs from the one the hello vouched for";
  return nullptr;
}

uint64_t maxReplyBody(int nranks) {
  return static_cast<uint64_t>(nranks > 0 ? nranks : 0) * (4 + uint64_t{kMaxBlobBytes});
}

const char* checkRootReplyHeader(const uint8_t* bytes, size_t n, int nranks, RootReply* out) {
  if (!load(bytes, n, out)) return "short reply";
  if (out->magic != kReplyMagic) return "not a sqz rendezvous reply";
  if (out->status == kReplyOk) {
    if (out->bodyBytes > maxReplyBody(nranks)) return "oversized reply";
  } else if (out->status == kReplyError) {
    if (out->bodyBytes > kMaxErrorBytes) return "oversized error text";
  } else {
    return "unknown reply status";
  }
  return nullptr;
}

const char* checkRootReplyBody(const RootReply& r, const HandshakeKeys& k, const uint8_t* body, size_t n) {
  if (n != r.bodyBytes) return "reply body size differs from its header";
  const Digest mac = replyMac(k, r.status, r.bodyBytes, body);
  if (!equalConstantTime(mac.data(), r.mac, 32)) return "reply not authenticated by the root";
  return nullptr;
}

bool unpackBlobTable(const uint8_t* body, size_t n, int nranks, std::vector<Blob>* out) {
  if (nranks < 0) return false;
  out->assign(static_cast<size_t>(nranks), Blob());
  size_t pos = 0;
  for (int r = 0; r < nranks; ++r) {
    uint32_t len = 0;
    if (n - pos < 4) return false;
    std::memcpy(&len, body + pos, 4);
    pos += 4;
    if (len > kMaxBlobBytes || n - pos < len) return false;
    (*out)[r].assign(body + pos, body + pos + len);
    pos += len;
  }
  return pos == n;
}

}  // namespace sqz
