#include "transport/nccl_transport.h"

#include <chrono>
#include <thread>

#include "common/env.h"
#include "common/error.h"
#include "common/log.h"

namespace sqz {
namespace {

const NcclApi& requireApi() {
  const char* why = "";
  const NcclApi* api = ncclApi(&why);
  SQZ_REQUIRE(api != nullptr, sqzInvalidUsage, "the NCCL transport needs NCCL: %s", why);
  return *api;
}

NcclStream asStream(void* s) { return static_cast<NcclStream>(s); }

}  // namespace

NcclTransport::NcclTransport(NcclComm comm, bool owned) : NcclTransport(requireApi(), comm, owned) {}

NcclTransport::NcclTransport(const NcclApi& api, NcclComm comm, bool owned) : api_(api), comm_(comm), owned_(owned) {
  SQZ_REQUIRE(comm_ != nullptr, sqzInvalidArgument, "ncclComm is NULL");
  waitSettled("the NCCL communicator's initialization");  // a non-blocking one may still be setting up
  check(api_.commUserRank(comm_, &rank_), "ncclCommUserRank");
  check(api_.commCount(comm_, &size_), "ncclCommCount");
  check(api_.commCuDevice(comm_, &device_), "ncclCommCuDevice");
}

NcclTransport::~NcclTransport() {
  if (owned_ && comm_) {
    NcclResult r = api_.commDestroy(comm_);
    if (r != kNcclSuccess) SQZ_WARN("ncclCommDestroy: %s", api_.getErrorString(r));
  }
}

NcclComm NcclTransport::live() const {
  SQZ_REQUIRE(comm_ != nullptr, sqzInvalidUsage, "the NCCL communicator was aborted");
  return comm_;
}

void NcclTransport::check(NcclResult r, const char* what) {
  ncclCheck(api_, r, what);
  if (r == kNcclInProgress) waitSettled(what);
}

void NcclTransport::waitSettled(const char* what) {
  const Deadline deadline = Deadline::fromTimeout();
  for (int polls = 0;; ++polls) {
    NcclResult state = kNcclSuccess;
    ncclCheck(api_, api_.commGetAsyncError(live(), &state), "ncclCommGetAsyncError");
    if (state != kNcclInProgress) return ncclCheck(api_, state, what);
    SQZ_REQUIRE(!deadline.expired(), sqzTimeout, "%s: still in progress after SQZ_TIMEOUT (non-blocking NCCL communicator)",
                what);
    if (polls < 100) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

NcclUniqueId NcclTransport::newUniqueId() {
  const NcclApi& api = requireApi();
  NcclUniqueId id{};
  ncclCheck(api, api.getUniqueId(&id), "ncclGetUniqueId");
  return id;
}

NcclComm NcclTransport::createComm(const NcclUniqueId& id, int nranks, int rank) {
  const NcclApi& api = requireApi();
  NcclComm comm = nullptr;
  ncclCheck(api, api.commInitRank(&comm, nranks, id, rank), "ncclCommInitRank");
  return comm;
}

RequestId NcclTransport::postSend(int peer, Tag, const void* buf, size_t bytes) {
  check(api_.send(buf, bytes, kNcclUint8, peer, live(), asStream(stream_)), "ncclSend");
  return next_++;
}

RequestId NcclTransport::postRecv(int peer, Tag, void* buf, size_t bytes) {
  check(api_.recv(buf, bytes, kNcclUint8, peer, live(), asStream(stream_)), "ncclRecv");
  return next_++;
}

RequestId NcclTransport::postRecvUpTo(int, Tag, void*, size_t, size_t*) {
  fail(sqzInternalError, "NCCL receives need the exact message size");
}

void NcclTransport::groupStart() { check(api_.groupStart(), "ncclGroupStart"); }
void NcclTransport::groupEnd() { check(api_.groupEnd(), "ncclGroupEnd"); }

void NcclTransport::allGather(const void* send, void* recv, size_t bytesPerRank, void* stream) {
  check(api_.allGather(send, recv, bytesPerRank, kNcclUint8, live(), asStream(stream)), "ncclAllGather");
}

void NcclTransport::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                              void* stream) {
  check(api_.allReduce(send, recv, count, static_cast<int>(type), static_cast<int>(op), live(), asStream(stream)),
        "ncclAllReduce");
}

void NcclTransport::broadcast(const void* send, void* recv, size_t bytes, int root, void* stream) {
  check(api_.broadcast(send, recv, bytes, kNcclUint8, root, live(), asStream(stream)), "ncclBroadcast");
}

void NcclTransport::checkAsyncError() {
  NcclResult async = kNcclSuccess;
  ncclCheck(api_, api_.commGetAsyncError(live(), &async), "ncclCommGetAsyncError");
  ncclCheck(api_, async, "NCCL communicator");
}

void NcclTransport::abort() {
  if (!comm_) return;
  if (owned_) {
    NcclResult r = api_.commAbort(comm_);  // frees it
    if (r != kNcclSuccess) SQZ_WARN("ncclCommAbort: %s", api_.getErrorString(r));
  }
  comm_ = nullptr;
}

}  // namespace sqz
