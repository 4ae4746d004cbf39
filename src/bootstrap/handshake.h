// The rendezvous protocol's messages (src/bootstrap/rendezvous.cc), and
// the checks a receiver makes of each before it believes a byte of it.
//
// Mutual challenge-response: the secret never travels. On each connection
//   rank -> root  ClientHello   a fresh rank nonce
//   root -> rank  RootProof     a fresh root nonce, HMAC(secret, "root" | both nonces)
//   rank -> root  RankHello     rank, nranks, SHA-256 of the blob,
//                               HMAC(secret, "rank" | both nonces | those fields)
//                 + blob        (read only once the hello's MAC holds)
//   root -> rank  RootReply     status, body size, HMAC(secret, "reply" | both nonces | status | body)
//                 + body        every rank's blob in rank order, or the error
// The rank checks the root's proof before it sends anything of its own, so
// only a root that knows the secret learns its address; the root admits
// only a hello whose MAC covers its own fresh nonce, so a hello recorded
// from an earlier connection (or job) is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "src/bootstrap/hmac.h"
#include "src/bootstrap/unique_id.h"

namespace sqz {

using Blob = std::vector<uint8_t>;
using Nonce = std::array<uint8_t, 16>;

inline constexpr uint16_t kHandshakeVersion = 2;
// The largest blob one rank may contribute, and the longest error text.
inline constexpr uint32_t kMaxBlobBytes = 1u << 20;
inline constexpr uint32_t kMaxErrorBytes = 4096;

#pragma pack(push, 1)
struct ClientHello {
  uint32_t magic;
  uint16_t version;
  uint16_t reserved;
  uint8_t rankNonce[16];
};
struct RootProof {
  uint32_t magic;
  uint16_t version;
  uint16_t reserved;
  uint8_t rootNonce[16];
  uint8_t mac[32];
};
struct RankHello {
  uint32_t magic;
  int32_t rank;
  int32_t nranks;
  uint32_t blobBytes;
  uint8_t blobDigest[32];
  uint8_t mac[32];
};
struct RootReply {
  uint32_t magic;
  uint32_t status;  // kReplyOk: body = every blob; kReplyError: body = the error text
  uint64_t bodyBytes;
  uint8_t mac[32];
};
#pragma pack(pop)

inline constexpr uint32_t kReplyOk = 0, kReplyError = 1;

// What both ends know of one connection: the secret and the two nonces.
struct HandshakeKeys {
  Secret secret{};
  Nonce rankNonce{};
  Nonce rootNonce{};
};

// Builders (the sender's side).
ClientHello makeClientHello(const Nonce& rankNonce);
RootProof makeRootProof(const HandshakeKeys& k);
RankHello makeRankHello(const HandshakeKeys& k, int rank, int nranks, const Blob& blob);
RootReply makeRootReply(const HandshakeKeys& k, uint32_t status, const std::vector<uint8_t>& body);
// The body of a kReplyOk reply: each blob as u32 length + bytes, in rank order.
std::vector<uint8_t> packBlobTable(const std::vector<const Blob*>& blobs);

// Checks (the receiver's side). Each takes exactly the bytes received for
// the fixed-size message and returns null when it is acceptable, else why
// not (a static string). Nothing is trusted before its check passes.
const char* checkClientHello(const uint8_t* bytes, size_t n, ClientHello* out);
const char* checkRootProof(const uint8_t* bytes, size_t n, const Secret& secret, const Nonce& rankNonce,
                           RootProof* out);
// Before the blob arrives: the MAC covers rank, nranks and the blob's digest.
const char* checkRankHello(const uint8_t* bytes, size_t n, const HandshakeKeys& k, RankHello* out);
// Once it has arrived: the blob matches the digest the hello carried.
const char* checkBlob(const RankHello& h, const uint8_t* blob, size_t n);
const char* checkRootReplyHeader(const uint8_t* bytes, size_t n, int nranks, RootReply* out);
const char* checkRootReplyBody(const RootReply& r, const HandshakeKeys& k, const uint8_t* body, size_t n);
// Splits a checked kReplyOk body into nranks blobs; false when malformed.
bool unpackBlobTable(const uint8_t* body, size_t n, int nranks, std::vector<Blob>* out);

// The most body bytes a kReplyOk reply to nranks ranks can hold.
uint64_t maxReplyBody(int nranks);

}  // namespace sqz
