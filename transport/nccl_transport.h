// The transport for device memory over NCCL (DESIGN.md section 2): sends
// and receives are ncclSend/ncclRecv on the transport's current stream,
// grouped between groupStart/groupEnd so that a step's operations fuse, and
// fixed-size collectives (allgather of equal payloads, allreduce of a dense
// buffer) go straight to NCCL's. Everything is stream-ordered: "complete"
// means enqueued, and the stream carries the ordering, so wait/test never
// block. NCCL matches messages per peer in posting order, so tags are not
// needed (and not checked).
//
// Ownership: a communicator sqz created (owned) is destroyed with the
// transport and aborted by abort(); an adopted one (sqzCommInitFromNccl, the
// interposer) stays the application's: sqz never destroys or aborts it, as
// the application's own ncclCommAbort/Destroy frees it (a second abort would
// free it twice).
//
// Non-blocking communicators (ncclConfig_t blocking = 0) answer
// ncclInProgress while an operation is being set up, and nothing else may be
// called on them until ncclCommGetAsyncError stops saying so: every call
// here waits for that (bounded by SQZ_TIMEOUT) before it returns.
#pragma once

#include <cstddef>

#include "sqz.h"
#include "transport/nccl_api.h"
#include "transport/transport.h"

namespace sqz {

class NcclTransport : public Transport {
 public:
  // Uses `comm` through the loaded NCCL, or through `api` (a table of NCCL's
  // functions: the loaded library's, or a test's).
  NcclTransport(NcclComm comm, bool owned);
  NcclTransport(const NcclApi& api, NcclComm comm, bool owned);
  ~NcclTransport() override;
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

  // Creates a communicator for (rank, nranks) from a unique id that the
  // caller distributed (rank 0 made it with newUniqueId).
  static NcclComm createComm(const NcclUniqueId& id, int nranks, int rank);
  static NcclUniqueId newUniqueId();

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const { return device_; }
  NcclComm comm() const { return comm_; }

  // The stream later operations are enqueued on (a cudaStream_t).
  void setStream(void* stream) { stream_ = stream; }

  RequestId postSend(int peer, Tag tag, const void* buf, size_t bytes) override;
  RequestId postRecv(int peer, Tag tag, void* buf, size_t bytes) override;
  RequestId postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) override;
  void wait(RequestId, const Deadline&) override {}
  bool test(RequestId) override { return true; }
  void cancelAll() override {}
  void groupStart() override;
  void groupEnd() override;

  // Stream-ordered collectives on device memory.
  void allGather(const void* send, void* recv, size_t bytesPerRank, void* stream);
  void allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op, void* stream);
  void broadcast(const void* send, void* recv, size_t bytes, int root, void* stream);

  // The communicator's asynchronous error (a dead peer, a network failure):
  // throws it as sqz::Error; returns when there is none.
  void checkAsyncError();
  // Stops using the communicator (aborting it only when owned); later
  // operations fail with sqzInvalidUsage.
  void abort();

 private:
  NcclComm live() const;
  // ncclCheck, then, for ncclInProgress, waits until the communicator has
  // settled (and throws its error, if that is what it settled on).
  void check(NcclResult r, const char* what);
  void waitSettled(const char* what);

  const NcclApi& api_;
  NcclComm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1, device_ = 0;
  void* stream_ = nullptr;
  RequestId next_ = 1;
};

}  // namespace sqz
