// Transport over UCX tag matching (host memory; TCP, shared memory or
// InfiniBand, whichever UCX selects). Endpoints use UCX's peer error
// handling, so a dead peer fails pending operations instead of hanging.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sqz.h"
#include "transport/transport.h"

namespace sqz {

// Idle polls of a wait before it yields the core: spin while this machine's
// ranks fit its usable cores, yield at once when they outnumber them.
unsigned defaultSpinPolls(int ranksOnThisMachine, int usableCores);

// The result of an endpoint that could not be created: sqzRemoteError
// where the status says the peer's side is gone or unreachable (its shared
// memory segment removed, a refused or reset connection), as for a failed
// transfer; sqzSystemError for this process's own trouble (no memory, no
// resources).
sqzResult_t endpointCreateResult(ucs_status_t status);

class UcxTransport final : public Transport {
 public:
  // Creates this rank's UCX worker. Connect with connect() once every
  // rank's address (localAddress()) is known. offerNetworkWorker: also
  // create a worker whose messages below kNetworkEagerBytes go eagerly
  // (connect() keeps it where every link is TCP between nodes); ignored
  // when UCX_RNDV_THRESH is set.
  UcxTransport(int rank, int size, bool offerNetworkWorker = false);
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  // Opaque: this rank's worker address(es) for every peer's connect().
  const std::vector<uint8_t>& localAddress() const { return address_; }
  // sameNode[r]: rank r shares this node. UCX 1.13 offers shared memory only
  // to endpoints without peer error handling, so those endpoints go without
  // it (a dead local peer is caught by the SQZ_TIMEOUT bound instead);
  // endpoints to other nodes keep it and fail fast. ranksOnThisMachine: the
  // ranks (this one included) sharing this machine's cores, whatever their
  // node ids; waits yield at once when they outnumber the usable cores.
  // nodesUnshared: no two ranks of the communicator share a node (the same
  // on every rank); then, if every rank offered one, the network workers
  // carry the communicator.
  void connect(const std::vector<std::vector<uint8_t>>& addresses, const std::vector<bool>& sameNode,
               int ranksOnThisMachine, bool nodesUnshared = false);

  // Whether the communicator runs on the eager network workers (connect()).
  bool onNetworkWorker() const { return onNetworkWorker_; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  RequestId postSend(int peer, Tag tag, const void* buf, size_t bytes) override;
  RequestId postRecv(int peer, Tag tag, void* buf, size_t bytes) override;
  RequestId postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) override;
  void wait(RequestId id, const Deadline& deadline) override;
  bool test(RequestId id) override;
  void checkPeers() override;
  void cancelAll() override;

  // Idle polls before a wait yields the core (SQZ_SPIN_POLLS; set by connect()).
  unsigned spinPolls() const { return spinPolls_; }

  // Closes endpoints without flushing and marks the transport broken.
  void abort();

  struct Op;  // public for the C callbacks in the .cc file
  struct Peer;

 private:
  uint64_t ucxTag(int sender, Tag tag) const;
  RequestId postReceive(int peer, Tag tag, void* buf, size_t bytes, size_t* received);
  // A cleared op from the pool and its id (slot and generation).
  RequestId takeOp(Op** op);
  // Returns an op to the pool (its UCX request freed).
  void releaseOp(Op& op);
  Op& lookup(RequestId id);
  // Releases a completed op; throws if it completed with an error.
  void finish(Op& op);
  // Marks the transport broken, cancels every outstanding request, throws.
  [[noreturn]] void failAndCancel(sqzResult_t code, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  void closeEndpoints(bool force);
  void checkUsable() const;

  int rank_;
  int size_;
  std::shared_ptr<void> context_;  // process-wide ucp_context, refcounted
  ucp_worker_h worker_ = nullptr;
  std::shared_ptr<void> networkContext_;  // offerNetworkWorker's context and worker, until connect()
  ucp_worker_h networkWorker_ = nullptr;
  bool onNetworkWorker_ = false;
  std::vector<uint8_t> address_;
  std::vector<std::unique_ptr<Peer>> peers_;
  // Ops are reused, not allocated per message: a small call posts one
  // send and one receive per peer. A RequestId is the op's slot (low 32
  // bits) and the generation it was taken in (high 32), so a stale id is
  // caught instead of waiting on another call's op.
  std::vector<std::unique_ptr<Op>> slots_;
  std::vector<uint32_t> freeSlots_;
  size_t liveOps_ = 0;
  unsigned spinPolls_ = 1;  // idle progress calls before a wait yields (connect())
  bool broken_ = false;
  std::string brokenReason_;
};

}  // namespace sqz
