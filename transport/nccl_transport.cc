#include "transport/nccl_transport.h"

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

NcclTransport::NcclTransport(NcclComm comm, bool owned) : api_(requireApi()), comm_(comm), owned_(owned) {
  SQZ_REQUIRE(comm_ != nullptr, sqzInvalidArgument, "ncclComm is NULL");
  ncclCheck(api_.commUserRank(comm_, &rank_), "ncclCommUserRank");
  ncclCheck(api_.commCount(comm_, &size_), "ncclCommCount");
  ncclCheck(api_.commCuDevice(comm_, &device_), "ncclCommCuDevice");
}

NcclTransport::~NcclTransport() {
  if (owned_ && comm_) {
    NcclResult r = api_.commDestroy(comm_);
    if (r != kNcclSuccess) SQZ_WARN("ncclCommDestroy: %s", api_.getErrorString(r));
  }
}

NcclUniqueId NcclTransport::newUniqueId() {
  NcclUniqueId id{};
  ncclCheck(requireApi().getUniqueId(&id), "ncclGetUniqueId");
  return id;
}

NcclComm NcclTransport::createComm(const NcclUniqueId& id, int nranks, int rank) {
  NcclComm comm = nullptr;
  ncclCheck(requireApi().commInitRank(&comm, nranks, id, rank), "ncclCommInitRank");
  return comm;
}

RequestId NcclTransport::postSend(int peer, Tag, const void* buf, size_t bytes) {
  ncclCheck(api_.send(buf, bytes, kNcclUint8, peer, comm_, asStream(stream_)), "ncclSend");
  return next_++;
}

RequestId NcclTransport::postRecv(int peer, Tag, void* buf, size_t bytes) {
  ncclCheck(api_.recv(buf, bytes, kNcclUint8, peer, comm_, asStream(stream_)), "ncclRecv");
  return next_++;
}

void NcclTransport::groupStart() { ncclCheck(api_.groupStart(), "ncclGroupStart"); }
void NcclTransport::groupEnd() { ncclCheck(api_.groupEnd(), "ncclGroupEnd"); }

void NcclTransport::allGather(const void* send, void* recv, size_t bytesPerRank, void* stream) {
  ncclCheck(api_.allGather(send, recv, bytesPerRank, kNcclUint8, comm_, asStream(stream)), "ncclAllGather");
}

void NcclTransport::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                              void* stream) {
  ncclCheck(api_.allReduce(send, recv, count, static_cast<int>(type), static_cast<int>(op), comm_, asStream(stream)),
            "ncclAllReduce");
}

void NcclTransport::broadcast(const void* send, void* recv, size_t bytes, int root, void* stream) {
  ncclCheck(api_.broadcast(send, recv, bytes, kNcclUint8, root, comm_, asStream(stream)), "ncclBroadcast");
}

void NcclTransport::checkAsyncError() {
  NcclResult async = kNcclSuccess;
  ncclCheck(api_.commGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
  ncclCheck(async, "NCCL communicator");
}

void NcclTransport::abort() {
  if (!comm_) return;
  api_.commAbort(comm_);
  comm_ = nullptr;  // aborted communicators are freed by ncclCommAbort
}

}  // namespace sqz
