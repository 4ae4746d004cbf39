// The C boundary: validates arguments, finds the communicator, and turns
// every exception into a status code plus the communicator's last error.
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>

#include <netinet/in.h>

#include "common/dtype.h"
#include "common/error.h"
#include "common/log.h"
#include "sqz.h"
#include "src/bootstrap/launcher_env.h"
#include "src/bootstrap/rendezvous.h"
#include "src/comm.h"
#include "src/memory_kind.h"

using sqz::Communicator;
using sqz::Error;
using sqz::fail;

namespace {

std::mutex g_liveMutex;
std::unordered_set<const sqzComm*> g_live;  // communicators not yet destroyed
thread_local std::string t_lastError;       // failures without a communicator

bool isLive(const sqzComm* c) {
  std::lock_guard<std::mutex> lock(g_liveMutex);
  return c && g_live.count(c) > 0;
}

void record(const sqzComm* comm, const char* fn, const std::string& msg) {
  std::string text = std::string(fn) + ": " + msg;
  SQZ_WARN("%s", text.c_str());
  if (comm && isLive(comm)) comm->impl->lastError = text;
  else t_lastError = text;
}

// Runs f, mapping exceptions to status codes. `comm` may be null.
template <typename F>
sqzResult_t guarded(const sqzComm* comm, const char* fn, F&& f) {
  try {
    f();
    return sqzSuccess;
  } catch (const Error& e) {
    record(comm, fn, e.what());
    return e.code();
  } catch (const std::bad_alloc&) {
    record(comm, fn, "out of memory");
    return sqzSystemError;
  } catch (const std::exception& e) {
    record(comm, fn, std::string("internal error: ") + e.what());
    return sqzInternalError;
  } catch (...) {
    record(comm, fn, "internal error");
    return sqzInternalError;
  }
}

Communicator& live(const sqzComm* comm) {
  if (!comm) fail(sqzInvalidArgument, "comm is NULL");
  if (!isLive(comm)) fail(sqzInvalidArgument, "comm is not a live communicator (destroyed or never created)");
  return *comm->impl;
}

void checkType(sqzDataType_t type) {
  SQZ_REQUIRE(sqz::validDataType(type), sqzInvalidArgument, "invalid datatype %d", static_cast<int>(type));
}

// A user buffer of `bytes` bytes holding elements of `elem` bytes; returns
// whether it is device (or managed) memory.
bool checkBuffer(const void* p, size_t bytes, size_t elem, const char* name) {
  if (bytes == 0) return false;
  SQZ_REQUIRE(p != nullptr, sqzInvalidArgument, "%s is NULL", name);
  SQZ_REQUIRE(reinterpret_cast<uintptr_t>(p) % elem == 0, sqzInvalidArgument,
              "%s (%p) is not aligned to its %zu-byte element size", name, p, elem);
  return sqz::classifyPointer(p) != sqz::MemoryKind::kHost;
}

// Collectives other than allreduce serve host buffers only.
void checkHostBuffer(const void* p, size_t bytes, size_t elem, const char* name, const char* fn) {
  SQZ_REQUIRE(!checkBuffer(p, bytes, elem, name), sqzInvalidUsage,
              "%s: %s is GPU memory; %s serves host buffers in this build (use NCCL's for device memory)", fn, name,
              fn);
}

size_t checkedBytes(size_t count, size_t elem) {
  SQZ_REQUIRE(count <= SIZE_MAX / elem / 2, sqzInvalidArgument, "count %zu is too large", count);
  return count * elem;
}

// Send and receive buffers must be the same or disjoint.
void checkOverlap(const void* a, size_t aBytes, const void* b, size_t bBytes, const char* what) {
  if (!a || !b || a == b) return;
  auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  SQZ_REQUIRE(x + aBytes <= y || y + bBytes <= x, sqzInvalidArgument,
              "%s: send and receive buffers partly overlap (use the same pointer for in place)", what);
}

// The checks every allreduce entry point makes before any communication;
// returns whether the buffers are device memory (both, or neither).
bool checkAllreduceArgs(const void* send, const void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op) {
  checkType(type);
  SQZ_REQUIRE(sqz::validRedOp(op), sqzInvalidArgument, "invalid reduction op %d", static_cast<int>(op));
  const size_t elem = sqz::dataTypeSize(type);
  const size_t bytes = checkedBytes(count, elem);
  const bool sendDevice = checkBuffer(send, bytes, elem, "sendbuff");
  const bool recvDevice = checkBuffer(recv, bytes, elem, "recvbuff");
  SQZ_REQUIRE(sendDevice == recvDevice, sqzInvalidUsage, "sendbuff is %s memory but recvbuff is %s memory",
              sendDevice ? "GPU" : "host", recvDevice ? "GPU" : "host");
  checkOverlap(send, bytes, recv, bytes, "allreduce");
  return sendDevice;
}

// A collective entry point consumes the pending call tag even when it fails
// before its header goes out, so that the tag never lands on a later call.
sqzResult_t consumingCallTag(sqzComm_t comm, sqzResult_t result) {
  if (result != sqzSuccess && isLive(comm)) comm->impl->setCallTag(0);
  return result;
}

}  // namespace

extern "C" {

sqzResult_t sqzGetVersion(int* version) {
  return guarded(nullptr, "sqzGetVersion", [&] {
    SQZ_REQUIRE(version, sqzInvalidArgument, "version is NULL");
    *version = SQZ_VERSION_CODE;
  });
}

sqzResult_t sqzGetUniqueId(sqzUniqueId* uniqueId) {
  return guarded(nullptr, "sqzGetUniqueId", [&] {
    SQZ_REQUIRE(uniqueId, sqzInvalidArgument, "uniqueId is NULL");
    sqz::BootstrapId id;
    id.secret = sqz::randomSecret();
    id.root = sqz::startRendezvousRoot(sqz::pickListenAddress(), id.secret);
    id.pack(uniqueId);
    SQZ_INFO("unique id: rendezvous at %s", id.root.toString().c_str());
  });
}

static sqzResult_t initComm(sqzComm_t* comm, const char* fn, const sqz::BootstrapId* id, int nranks, int rank) {
  return guarded(nullptr, fn, [&] {
    auto handle = std::make_unique<sqzComm>();
    handle->impl = std::make_unique<Communicator>(*id, nranks, rank);
    std::lock_guard<std::mutex> lock(g_liveMutex);
    g_live.insert(handle.get());
    *comm = handle.release();
  });
}

sqzResult_t sqzCommInitRank(sqzComm_t* comm, int nranks, sqzUniqueId commId, int rank) {
  sqz::BootstrapId id;
  sqzResult_t r = guarded(nullptr, "sqzCommInitRank", [&] {
    SQZ_REQUIRE(comm, sqzInvalidArgument, "comm is NULL");
    *comm = nullptr;
    SQZ_REQUIRE(nranks > 0, sqzInvalidArgument, "nranks %d must be positive", nranks);
    SQZ_REQUIRE(rank >= 0 && rank < nranks, sqzInvalidArgument, "rank %d is not in [0, %d)", rank, nranks);
    id = sqz::BootstrapId::unpack(commId);
  });
  if (r != sqzSuccess) return r;
  return initComm(comm, "sqzCommInitRank", &id, nranks, rank);
}

sqzResult_t sqzCommInitFromEnv(sqzComm_t* comm) {
  sqz::BootstrapId id;
  sqz::LaunchEnv env;
  sqzResult_t r = guarded(nullptr, "sqzCommInitFromEnv", [&] {
    SQZ_REQUIRE(comm, sqzInvalidArgument, "comm is NULL");
    *comm = nullptr;
    env = sqz::readLaunchEnv();
    id.root = sqz::resolveAddress(env.rootHost, env.rootPort);
    id.secret = env.secret;
    if (env.rank == 0) {
      // Rank 0 serves the rendezvous at the agreed address only (the
      // interface MASTER_ADDR or SQZ_ROOT resolves to), not on every interface.
      sqz::startRendezvousRoot(id.root, env.secret, env.size);
    }
  });
  if (r != sqzSuccess) return r;
  return initComm(comm, "sqzCommInitFromEnv", &id, env.size, env.rank);
}

sqzResult_t sqzCommDestroy(sqzComm_t comm) {
  return guarded(nullptr, "sqzCommDestroy", [&] {
    live(comm);
    {
      std::lock_guard<std::mutex> lock(g_liveMutex);
      g_live.erase(comm);
    }
    delete comm;
  });
}

sqzResult_t sqzCommAbort(sqzComm_t comm) {
  return guarded(nullptr, "sqzCommAbort", [&] {
    live(comm).abort();
    {
      std::lock_guard<std::mutex> lock(g_liveMutex);
      g_live.erase(comm);
    }
    delete comm;
  });
}

sqzResult_t sqzCommCount(const sqzComm_t comm, int* count) {
  return guarded(comm, "sqzCommCount", [&] {
    SQZ_REQUIRE(count, sqzInvalidArgument, "count is NULL");
    *count = live(comm).size();
  });
}

sqzResult_t sqzCommUserRank(const sqzComm_t comm, int* rank) {
  return guarded(comm, "sqzCommUserRank", [&] {
    SQZ_REQUIRE(rank, sqzInvalidArgument, "rank is NULL");
    *rank = live(comm).rank();
  });
}

sqzResult_t sqzCommSetCompression(sqzComm_t comm, const char* spec) {
  return guarded(comm, "sqzCommSetCompression", [&] {
    Communicator& c = live(comm);
    SQZ_REQUIRE(spec, sqzInvalidArgument, "spec is NULL");
    c.setCompression(spec);
  });
}

sqzResult_t sqzCommSetOptimizer(sqzComm_t comm, const char* optimizer, double momentum) {
  return guarded(comm, "sqzCommSetOptimizer", [&] {
    Communicator& c = live(comm);
    SQZ_REQUIRE(optimizer, sqzInvalidArgument, "optimizer is NULL");
    c.setOptimizer(optimizer, momentum);
  });
}

sqzResult_t sqzAllReduce(const void* sendbuff, void* recvbuff, size_t count, sqzDataType_t datatype,
                         sqzRedOp_t op, sqzComm_t comm, sqzCudaStream_t stream) {
  return consumingCallTag(comm, guarded(comm, "sqzAllReduce", [&] {
    Communicator& c = live(comm);
    if (checkAllreduceArgs(sendbuff, recvbuff, count, datatype, op))
      c.allReduceDevice(sendbuff, recvbuff, count, datatype, op, stream, nullptr, nullptr);
    else
      c.allReduce(sendbuff, recvbuff, count, datatype, op);
  }));
}

sqzResult_t sqzStateCreate(sqzComm_t comm, size_t count, sqzDataType_t datatype, sqzState_t* state) {
  return guarded(comm, "sqzStateCreate", [&] {
    live(comm);
    SQZ_REQUIRE(state, sqzInvalidArgument, "state is NULL");
    checkType(datatype);
    checkedBytes(count, sqz::dataTypeSize(datatype));
    auto s = std::make_unique<sqzState>();
    s->comm = comm;
    s->impl = std::make_unique<sqz::ErrorFeedbackState>(count, datatype);
    *state = s.release();
  });
}

sqzResult_t sqzStateDestroy(sqzState_t state) {
  return guarded(nullptr, "sqzStateDestroy", [&] {
    // The device path keys a state's residual by its address: drop it, so
    // that a state created later at the same address starts clean.
    if (state && isLive(state->comm)) state->comm->impl->forgetState(state);
    delete state;
  });
}

sqzResult_t sqzAllReduceEx(const void* sendbuff, void* recvbuff, size_t count, sqzDataType_t datatype, sqzRedOp_t op,
                           const char* spec, sqzState_t state, sqzComm_t comm, sqzCudaStream_t stream) {
  return consumingCallTag(comm, guarded(comm, "sqzAllReduceEx", [&] {
    Communicator& c = live(comm);
    const bool device = checkAllreduceArgs(sendbuff, recvbuff, count, datatype, op);
    if (state) {
      SQZ_REQUIRE(state->comm == comm, sqzInvalidArgument, "state belongs to another communicator");
      SQZ_REQUIRE(state->impl->count == count && state->impl->type == datatype, sqzInvalidArgument,
                  "state was created for %zu %s elements, the call has %zu %s", state->impl->count,
                  sqz::dataTypeName(state->impl->type), count, sqz::dataTypeName(datatype));
    }
    if (device) c.allReduceDevice(sendbuff, recvbuff, count, datatype, op, stream, spec, state);
    else c.allReduce(sendbuff, recvbuff, count, datatype, op, spec, state ? state->impl.get() : nullptr);
  }));
}

sqzResult_t sqzGetCallInfo(sqzComm_t comm, sqzCallInfo* info) {
  return guarded(comm, "sqzGetCallInfo", [&] {
    Communicator& c = live(comm);
    SQZ_REQUIRE(info, sqzInvalidArgument, "info is NULL");
    *info = c.lastCall();
  });
}

sqzResult_t sqzBroadcast(const void* sendbuff, void* recvbuff, size_t count, sqzDataType_t datatype, int root,
                         sqzComm_t comm, sqzCudaStream_t /*stream*/) {
  return consumingCallTag(comm, guarded(comm, "sqzBroadcast", [&] {
    Communicator& c = live(comm);
    checkType(datatype);
    SQZ_REQUIRE(root >= 0 && root < c.size(), sqzInvalidArgument, "root %d is not in [0, %d)", root, c.size());
    size_t elem = sqz::dataTypeSize(datatype);
    size_t bytes = checkedBytes(count, elem);
    if (c.rank() == root) {
      checkHostBuffer(sendbuff, bytes, elem, "sendbuff", "sqzBroadcast");
      checkOverlap(sendbuff, bytes, recvbuff, bytes, "sqzBroadcast");
    }
    checkHostBuffer(recvbuff, bytes, elem, "recvbuff", "sqzBroadcast");
    c.broadcast(sendbuff, recvbuff, count, datatype, root);
  }));
}

sqzResult_t sqzAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, sqzDataType_t datatype,
                         sqzComm_t comm, sqzCudaStream_t /*stream*/) {
  return consumingCallTag(comm, guarded(comm, "sqzAllGather", [&] {
    Communicator& c = live(comm);
    checkType(datatype);
    size_t elem = sqz::dataTypeSize(datatype);
    size_t bytes = checkedBytes(sendcount, elem);
    SQZ_REQUIRE(sendcount == 0 || bytes <= SIZE_MAX / 2 / static_cast<size_t>(c.size()), sqzInvalidArgument,
                "sendcount %zu is too large", sendcount);
    checkHostBuffer(sendbuff, bytes, elem, "sendbuff", "sqzAllGather");
    checkHostBuffer(recvbuff, bytes * c.size(), elem, "recvbuff", "sqzAllGather");
    const char* mySlot = static_cast<const char*>(recvbuff) + bytes * c.rank();
    if (sendbuff != mySlot) checkOverlap(sendbuff, bytes, recvbuff, bytes * c.size(), "sqzAllGather");
    c.allGather(sendbuff, recvbuff, sendcount, datatype);
  }));
}

sqzResult_t sqzTimelineRecord(sqzComm_t comm, const char* name, const char* category, int lane, double startSeconds,
                              double durationSeconds, const char* argsJson) {
  return guarded(comm, "sqzTimelineRecord", [&] {
    Communicator& c = live(comm);
    SQZ_REQUIRE(name && category, sqzInvalidArgument, "name and category must not be NULL");
    SQZ_REQUIRE(durationSeconds >= 0, sqzInvalidArgument, "negative duration");
    sqz::Timeline* t = c.timeline();
    SQZ_REQUIRE(t, sqzInvalidUsage, "no timeline is being written (set SQZ_TIMELINE before creating the communicator)");
    t->complete(name, category, lane, startSeconds, durationSeconds, argsJson ? argsJson : "");
  });
}

sqzResult_t sqzBarrier(sqzComm_t comm) {
  return consumingCallTag(comm, guarded(comm, "sqzBarrier", [&] { live(comm).barrier(); }));
}

sqzResult_t sqzCommSetCallTag(sqzComm_t comm, uint64_t tag) {
  return guarded(comm, "sqzCommSetCallTag", [&] { live(comm).setCallTag(tag); });
}

sqzResult_t sqzJoin(sqzComm_t comm, int* lastJoinedRank) {
  return guarded(comm, "sqzJoin", [&] {
    Communicator& c = live(comm);
    SQZ_REQUIRE(lastJoinedRank, sqzInvalidArgument, "lastJoinedRank is NULL");
    *lastJoinedRank = c.join();
  });
}

sqzResult_t sqzGetFeatures(int* features) {
  return guarded(nullptr, "sqzGetFeatures", [&] {
    SQZ_REQUIRE(features, sqzInvalidArgument, "features is NULL");
    int f = 0;
#ifdef SQZ_HAVE_CUDA
    f |= SQZ_FEATURE_CUDA;
#endif
    *features = f;
  });
}

const char* sqzGetErrorString(sqzResult_t result) {
  switch (result) {
    case sqzSuccess: return "no error";
    case sqzUnhandledCudaError: return "unhandled cuda error (run with SQZ_DEBUG=INFO for details)";
    case sqzSystemError: return "unhandled system error (run with SQZ_DEBUG=INFO for details)";
    case sqzInternalError: return "internal error - please report this issue";
    case sqzInvalidArgument: return "invalid argument (run with SQZ_DEBUG=WARN for details)";
    case sqzInvalidUsage: return "invalid usage (run with SQZ_DEBUG=WARN for details)";
    case sqzRemoteError: return "remote process exited or there was a network error";
    case sqzInProgress: return "operation in progress";
    case sqzTimeout: return "timed out (SQZ_TIMEOUT)";
    default: return "unknown result code";
  }
}

const char* sqzGetLastError(sqzComm_t comm) {
  if (!comm) return t_lastError.c_str();
  if (!isLive(comm)) return "comm is not a live communicator";
  return comm->impl->lastError.c_str();
}

sqzResult_t sqzCommInitFromNccl(sqzComm_t* comm, sqzNcclComm_t ncclComm) {
  if (comm) *comm = nullptr;
  int rank = 0, size = 0;
  sqzUniqueId id{};
  sqzResult_t r = guarded(nullptr, "sqzCommInitFromNccl", [&] {
    SQZ_REQUIRE(comm != nullptr && ncclComm != nullptr, sqzInvalidArgument, "comm or ncclComm is NULL");
    sqz::ncclRankAndSize(ncclComm, &rank, &size);
  });
  if (r != sqzSuccess) return r;
  // Rank 0 opens the rendezvous; the id reaches the others over NCCL itself.
  sqzResult_t made = rank == 0 ? sqzGetUniqueId(&id) : sqzSuccess;
  r = guarded(nullptr, "sqzCommInitFromNccl", [&] {
    // Rank 0 broadcasts even after a failure (an all-zero id), so that no
    // rank is left waiting in ncclBroadcast; every rank then fails.
    if (made != sqzSuccess) std::memset(&id, 0, sizeof id);
    sqz::ncclBroadcastHostBytes(ncclComm, &id, sizeof id);
    static const sqzUniqueId zero{};
    SQZ_REQUIRE(std::memcmp(&id, &zero, sizeof id) != 0, sqzInvalidUsage,
                "rank 0 could not create the rendezvous (sqzGetUniqueId failed there)");
  });
  if (r != sqzSuccess) return r;
  r = sqzCommInitRank(comm, size, id, rank);
  if (r != sqzSuccess) return r;
  r = guarded(*comm, "sqzCommInitFromNccl", [&] { live(*comm).adoptNccl(ncclComm); });
  if (r != sqzSuccess) {
    sqzCommDestroy(*comm);
    *comm = nullptr;
  }
  return r;
}

sqzResult_t sqzCommGetAsyncError(sqzComm_t comm, sqzResult_t* asyncError) {
  return guarded(comm, "sqzCommGetAsyncError", [&] {
    Communicator& c = live(comm);
    SQZ_REQUIRE(asyncError != nullptr, sqzInvalidArgument, "asyncError is NULL");
    std::string why;
    *asyncError = c.asyncError(&why);
    if (*asyncError != sqzSuccess) c.lastError = "asynchronous error: " + why;
  });
}

}  // extern "C"
