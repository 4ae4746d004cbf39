// The transport for device memory over NCCL (DESIGN.md section 2): sends
// and receives are ncclSend/ncclRecv on the transport's current stream,
// grouped between groupStart/groupEnd so that a step's operations fuse, and
// fixed-size collectives (allgather of equal payloads, allreduce of a dense
// buffer) go straight to NCCL's. Everything is stream-ordered: "complete"
// means enqueued, and the stream carries the ordering, so wait/test never
// block. NCCL matches messages per peer in posting order, so tags are not
// needed (and not checked).
#pragma once

#include <cstddef>

#include "sqz.h"
#include "transport/nccl_api.h"
#include "transport/transport.h"

namespace sqz {

class NcclTransport : public Transport {
 public:
  // Adopts `comm` (owned: destroyed with the transport; else the caller's).
  NcclTransport(NcclComm comm, bool owned);
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
  void abort();

 private:
  const NcclApi& api_;
  NcclComm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1, device_ = 0;
  void* stream_ = nullptr;
  RequestId next_ = 1;
};

}  // namespace sqz
