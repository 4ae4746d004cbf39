// The narrow transport interface every collective is written against
// (DESIGN.md section 2): post a send or receive of bytes to/from a peer under
// a tag, wait for completion with a bound, and group a step's operations.
// Implementations: UCX (host memory), NCCL (device memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/env.h"

namespace sqz {

// A message tag: the collective's sequence number and a slot within it (a
// step and chunk). The transport adds the sender's rank, so a receive
// matches exactly one message.
struct Tag {
  uint32_t seq = 0;   // low 24 bits used
  uint32_t slot = 0;  // low 24 bits used
};

// An in-flight operation, owned by the transport until waited for.
using RequestId = uint64_t;

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  virtual RequestId postSend(int peer, Tag tag, const void* buf, size_t bytes) = 0;
  // A receive completes only with a message of exactly `bytes` bytes;
  // anything else fails the wait with sqzInvalidUsage.
  virtual RequestId postRecv(int peer, Tag tag, void* buf, size_t bytes) = 0;
  // A receive of a message of at most `capacity` bytes, whose length is
  // written to *received when it completes (a call's first message, which
  // may carry data: collectives/call_agreement.h); a longer one fails the
  // wait with sqzInvalidUsage. Transports that match by size alone (NCCL)
  // cannot, and throw sqzInternalError.
  virtual RequestId postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) = 0;

  // Blocks until the request completes. Throws sqz::Error with
  // sqzRemoteError (peer failed), sqzTimeout (deadline passed) or
  // sqzInvalidUsage (size mismatch). On a throw, every outstanding request
  // of this transport is cancelled first, so no late write lands in a buffer
  // the caller is about to free.
  virtual void wait(RequestId id, const Deadline& deadline) = 0;
  // True when the request has completed (then it is released, as by wait);
  // throws as wait does on failure.
  virtual bool test(RequestId id) = 0;

  // Throws sqzRemoteError when the transport knows a peer has failed
  // (progressing it first): for waits that are not on its requests, such
  // as the shared segment's (collectives/shm_segment.h).
  virtual void checkPeers() {}

  // Cancels every outstanding request (after a failure or on abort).
  virtual void cancelAll() = 0;

  // Sends and receives posted between these may be issued together
  // (NCCL's group calls); a no-op for transports that need no grouping.
  virtual void groupStart() {}
  virtual void groupEnd() {}

  void waitAll(std::vector<RequestId>& ids, const Deadline& deadline) {
    for (RequestId id : ids) wait(id, deadline);
    ids.clear();
  }
};

}  // namespace sqz
