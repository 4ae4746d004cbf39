// libsqz_nccl.so: an NCCL interposer for LD_PRELOAD (DESIGN.md section 4).
//
// It defines ncclAllReduce and the calls that end a communicator's life
// (ncclCommFinalize, ncclCommDestroy, ncclCommAbort), plus the two that a
// served call must account for (ncclCommGetAsyncError, ncclGroupStart/End).
// Every other nccl* symbol an application calls still binds to the real
// libnccl (the dynamic linker keeps looking past this library), so
// forwarding them needs no wrappers.
//
// ncclAllReduce is served through sqz when SQZ_COMPRESSION is set (and not
// "none"), the type is float32/float16/bfloat16, the op sum or avg, and the
// buffer at least SQZ_MIN_BYTES. The sqz communicator is adopted lazily, on
// the first served call, from the application's ncclComm with
// sqzCommInitFromNccl: one per ncclComm. If that fails (no device path on
// this machine, say), a warning is logged once and the communicator's calls
// are forwarded from then on; if it fails because sqz refuses a setting
// (SQZ_COMPRESSION, a malformed SQZ_MIN_BYTES, read with sqz's own strict
// parser), the calls it would serve fail instead, as sqz's own would. A
// served call that fails returns its error: falling back to NCCL after
// peers may have joined sqz's collective would deadlock them.
//
// NCCL groups (PyTorch wraps collectives in ncclGroupStart/End, always for
// coalesced ones): an eligible call inside a group is deferred, and served
// after the real ncclGroupEnd has launched the rest of the group, in call
// order, on the call's stream. All ranks make the same calls in the same
// groups, so they defer and serve the same ones. One exception: a group
// whose eligible calls span several communicators (one thread driving
// several GPUs, ncclCommInitAll's way) is forwarded whole, before the real
// ncclGroupEnd: serving those one after another would block on the first
// (adoption is a collective) while its peers wait in the same thread.
//
// With SQZ_DEBUG=INFO, a summary at exit counts the ncclAllReduce calls:
// served (and how many of them were deferred to ncclGroupEnd), and
// forwarded, by reason.
//
// Everything else is forwarded to the real function, found with
// dlsym(RTLD_NEXT) or, failing that, NCCL's own pnccl* entry point from
// dlopen("libnccl.so.2"): never this library again. Calls that libsqz itself
// makes into NCCL while serving (it loads NCCL with dlopen, but a symbol
// resolved globally would land here) are forwarded untouched.
#include <dlfcn.h>
#include <nccl.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/error.h"
#include "sqz.h"

namespace {

// --- the real NCCL ----------------------------------------------------------

// The real NCCL function `name`; `self` is this library's own definition of
// it (null for a function not interposed here), which is never the answer.
void* realSymbol(const char* name, void* self) {
  void* next = dlsym(RTLD_NEXT, name);
  if (next && next != self) return next;
  // The application did not link libnccl before us: load it ourselves and
  // take NCCL's profiling entry point, which is the implementation itself.
  static void* lib = [] {
    void* l = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!l) l = dlopen("libnccl.so", RTLD_NOW | RTLD_GLOBAL);
    return l;
  }();
  void* found = nullptr;
  if (lib) {
    std::string profiled = std::string("p") + name;
    found = dlsym(lib, profiled.c_str());
    if (!found || found == self) found = dlsym(lib, name);
  }
  if (found == self) found = nullptr;
  if (!found) std::fprintf(stderr, "sqz-nccl: WARN cannot find the real %s (%s)\n", name, dlerror());
  return found;
}

// The real function `name` with this library's definition `self` as its type.
#define SQZ_REAL(name)                                                                              \
  ([]() {                                                                                           \
    static auto fn = reinterpret_cast<decltype(&name)>(realSymbol(#name, reinterpret_cast<void*>(&name))); \
    return fn;                                                                                      \
  }())

// --- configuration ----------------------------------------------------------

bool infoLogging() {
  static const bool on = [] {
    const char* v = std::getenv("SQZ_DEBUG");
    return v && (!strcasecmp(v, "INFO") || !strcasecmp(v, "TRACE"));
  }();
  return on;
}

#define SQZ_LOG(level, ...)                                                   \
  do {                                                                        \
    std::fprintf(stderr, "sqz-nccl: %d: " level " ", static_cast<int>(getpid())); \
    std::fprintf(stderr, __VA_ARGS__);                                        \
    std::fputc('\n', stderr);                                                 \
  } while (0)

const char* compressionSpec() {
  const char* spec = std::getenv("SQZ_COMPRESSION");
  if (!spec || !*spec || !std::strcmp(spec, "none")) return nullptr;
  return spec;
}

// SQZ_MIN_BYTES, read with sqz's own strict parser (common/env.h); false
// (and the message) when it is malformed.
bool minBytes(size_t* out, std::string* why) {
  try {
    *out = static_cast<size_t>(sqz::envBytes("SQZ_MIN_BYTES", 64u << 10));
    return true;
  } catch (const sqz::Error& e) {
    *why = e.what();
    return false;
  } catch (...) {  // nothing may throw out of an NCCL entry point
    *why = "SQZ_MIN_BYTES could not be read";
    return false;
  }
}

size_t elementSize(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
  }
}

const char* typeName(ncclDataType_t t) {
  switch (t) {
    case ncclFloat16: return "float16";
    case ncclBfloat16: return "bfloat16";
    case ncclFloat32: return "float32";
    default: return "other";
  }
}

enum class Route { kForward, kServe, kBadConfig };

// Whether sqz should serve the call: compression asked for, a float sum or
// average, large enough. The same answer on every rank (NCCL requires the
// same arguments everywhere), so all ranks adopt and serve together. A
// malformed SQZ_MIN_BYTES fails such calls rather than guess a threshold.
Route route(size_t count, ncclDataType_t type, ncclRedOp_t op) {
  if (!compressionSpec()) return Route::kForward;
  if (type != ncclFloat32 && type != ncclFloat16 && type != ncclBfloat16) return Route::kForward;
  if (op != ncclSum && op != ncclAvg) return Route::kForward;
  size_t threshold = 0;
  std::string why;
  if (!minBytes(&threshold, &why)) {
    static std::once_flag once;
    std::call_once(once, [&] {
      SQZ_LOG("WARN", "%s; failing compressible ncclAllReduce calls with ncclInvalidArgument", why.c_str());
    });
    return Route::kBadConfig;
  }
  return count * elementSize(type) >= threshold ? Route::kServe : Route::kForward;
}

// sqz and NCCL share the status numbering; sqz's timeout has no NCCL code
// and is what a lost peer looks like.
ncclResult_t toNccl(sqzResult_t r) {
  switch (r) {
    case sqzSuccess: return ncclSuccess;
    case sqzUnhandledCudaError: return ncclUnhandledCudaError;
    case sqzSystemError: return ncclSystemError;
    case sqzInternalError: return ncclInternalError;
    case sqzInvalidArgument: return ncclInvalidArgument;
    case sqzInvalidUsage: return ncclInvalidUsage;
    case sqzRemoteError: return ncclRemoteError;
    case sqzInProgress: return ncclInProgress;
    case sqzTimeout: return ncclRemoteError;
    default: return ncclInternalError;
  }
}

// --- what happened to the application's ncclAllReduce calls ----------------

struct CallCounts {
  std::atomic<long> served{0}, servedDeferred{0};
  std::atomic<long> forwardedIneligible{0}, forwardedGroupOfSeveralComms{0}, forwardedUnadoptable{0};
  std::atomic<long> failed{0};

  // Printed when the library unloads (process exit), with SQZ_DEBUG=INFO.
  ~CallCounts() {
    const long forwarded = forwardedIneligible + forwardedGroupOfSeveralComms + forwardedUnadoptable;
    if (!infoLogging() || served + forwarded + failed == 0) return;
    SQZ_LOG("INFO",
            "summary: ncclAllReduce calls: %ld served by sqz (%ld of them deferred to their ncclGroupEnd), %ld "
            "failed in sqz, %ld forwarded to NCCL: %ld not eligible (SQZ_COMPRESSION, type, op, SQZ_MIN_BYTES), "
            "%ld because they were inside an NCCL group over several communicators, %ld on a communicator sqz "
            "could not adopt",
            served.load(), servedDeferred.load(), failed.load(), forwarded, forwardedIneligible.load(),
            forwardedGroupOfSeveralComms.load(), forwardedUnadoptable.load());
  }
};
CallCounts g_counts;

// --- adopted communicators --------------------------------------------------

// What the interposer knows about one application ncclComm.
struct Adopted {
  std::timed_mutex mu;        // held while adopting (a collective) and serving
  sqzComm_t sqz = nullptr;    // the adopted sqz communicator, once made
  bool unservable = false;    // adoption failed: forward from now on
  sqzResult_t configError = sqzSuccess;  // sqz refused the configuration (SQZ_*): every served call fails
  bool loggedServed = false, loggedForwarded = false;
};

std::mutex g_mapMutex;
std::map<ncclComm_t, std::shared_ptr<Adopted>>& adoptedMap() {
  static auto* m = new std::map<ncclComm_t, std::shared_ptr<Adopted>>();  // outlives static destructors
  return *m;
}

std::shared_ptr<Adopted> entryFor(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(g_mapMutex);
  auto& slot = adoptedMap()[comm];
  if (!slot) slot = std::make_shared<Adopted>();
  return slot;
}

std::shared_ptr<Adopted> takeEntry(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(g_mapMutex);
  auto it = adoptedMap().find(comm);
  if (it == adoptedMap().end()) return nullptr;
  std::shared_ptr<Adopted> e = std::move(it->second);
  adoptedMap().erase(it);
  return e;
}

// Set while this thread is inside sqz on the interposer's behalf, and the
// depth of the application's NCCL group on this thread.
thread_local bool t_inSqz = false;
thread_local int t_groupDepth = 0;

// One ncclAllReduce call as the application made it.
struct AllReduceCall {
  const void* send;
  void* recv;
  size_t count;
  ncclDataType_t type;
  ncclRedOp_t op;
  ncclComm_t comm;
  cudaStream_t stream;
};
// Eligible calls of this thread's open group, served at its ncclGroupEnd.
thread_local std::vector<AllReduceCall> t_deferred;

struct InSqz {
  InSqz() { t_inSqz = true; }
  ~InSqz() { t_inSqz = false; }
};

// Adopts comm into e (caller holds e.mu). False when sqz cannot serve it;
// then e.configError says whether that is the configuration's fault (an
// error for the call) or the machine's (forward to NCCL).
bool adopt(Adopted& e, ncclComm_t comm) {
  if (e.sqz) return true;
  if (e.unservable || e.configError != sqzSuccess) return false;
  // A communicator NCCL does not recognise (null, destroyed, garbage) is
  // NCCL's to reject: forward the call so that the application gets NCCL's
  // own error. Answered by NCCL without any collective.
  int nranks = 0;
  // Not interposed, and not referenced by name: an address relocation for it
  // would have to resolve when this library loads, before NCCL may be there.
  using CountFn = ncclResult_t (*)(const ncclComm_t, int*);
  static auto realCount = reinterpret_cast<CountFn>(realSymbol("ncclCommCount", nullptr));
  if (!realCount || realCount(comm, &nranks) != ncclSuccess) return false;
  sqzResult_t r;
  {
    InSqz guard;
    r = sqzCommInitFromNccl(&e.sqz, reinterpret_cast<sqzNcclComm_t>(comm));
    if (r == sqzSuccess) {
      r = sqzCommSetCompression(e.sqz, compressionSpec());
      if (r != sqzSuccess) {
        SQZ_LOG("WARN", "SQZ_COMPRESSION=%s refused by sqz: %s (%s)", compressionSpec(), sqzGetErrorString(r),
                sqzGetLastError(e.sqz));
        sqzCommDestroy(e.sqz);
        e.sqz = nullptr;
        e.configError = r;
      }
    } else if (r == sqzInvalidArgument) {
      // A malformed SQZ_* variable (sqz reads them at creation): an error, not a reason to forward.
      SQZ_LOG("WARN", "cannot adopt ncclComm %p into sqz: %s (%s)", static_cast<void*>(comm), sqzGetErrorString(r),
              sqzGetLastError(nullptr));
      e.configError = r;
    } else {
      SQZ_LOG("WARN", "cannot adopt ncclComm %p (%d ranks) into sqz: %s (%s); forwarding its calls to NCCL",
              static_cast<void*>(comm), nranks, sqzGetErrorString(r), sqzGetLastError(nullptr));
      e.sqz = nullptr;
    }
  }
  if (!e.sqz) {
    e.unservable = e.configError == sqzSuccess;
    return false;
  }
  if (infoLogging())
    SQZ_LOG("INFO", "adopted ncclComm %p (%d ranks) into sqz, SQZ_COMPRESSION=%s", static_cast<void*>(comm), nranks,
            compressionSpec());
  return true;
}

// Frees the sqz side of an adopted communicator (the caller holds e.mu).
void dropSqz(Adopted& e, ncclComm_t comm, bool abort) {
  if (!e.sqz) return;
  InSqz guard;
  sqzResult_t r = abort ? sqzCommAbort(e.sqz) : sqzCommDestroy(e.sqz);
  if (r != sqzSuccess) SQZ_LOG("WARN", "releasing the sqz side of ncclComm %p: %s", static_cast<void*>(comm),
                               sqzGetErrorString(r));
  else if (infoLogging())
    SQZ_LOG("INFO", "%s the sqz communicator of ncclComm %p", abort ? "aborted" : "destroyed",
            static_cast<void*>(comm));
  e.sqz = nullptr;
}

// Drops the sqz side of comm before NCCL destroys it: the sqz communicator
// uses the ncclComm until destroyed, so it goes first (waiting for a call in
// progress: NCCL forbids destroying a communicator during one).
void release(ncclComm_t comm) {
  std::shared_ptr<Adopted> e = takeEntry(comm);
  if (!e) return;
  std::lock_guard<std::timed_mutex> lock(e->mu);
  dropSqz(*e, comm, false);
}

}  // namespace

#define SQZ_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// The body of an NCCL entry point: nothing may throw out of it, since its
// caller is C (a std::bad_alloc from a map or vector, a std::system_error
// from a mutex). What would escape becomes an NCCL error instead.
template <class Body>
ncclResult_t noThrow(const char* entry, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    SQZ_LOG("WARN", "%s: %s", entry, e.what());
  } catch (...) {
    SQZ_LOG("WARN", "%s: an unknown exception", entry);
  }
  return ncclInternalError;
}

ncclResult_t forward(const AllReduceCall& c) {
  auto real = SQZ_REAL(ncclAllReduce);
  return real ? real(c.send, c.recv, c.count, c.type, c.op, c.comm, c.stream) : ncclSystemError;
}

void logForwardedOnce(Adopted& e, const AllReduceCall& c, const char* why) {
  if (!infoLogging()) return;
  std::lock_guard<std::timed_mutex> lock(e.mu);
  if (e.loggedForwarded) return;
  e.loggedForwarded = true;
  SQZ_LOG("INFO", "forwarding ncclAllReduce on ncclComm %p (%zu elements, type %d, op %d) to NCCL: %s",
          static_cast<void*>(c.comm), c.count, static_cast<int>(c.type), static_cast<int>(c.op), why);
}

// Serves an eligible call through sqz (adopting its communicator first), or
// forwards it when sqz cannot adopt that communicator.
ncclResult_t serve(const AllReduceCall& c, bool deferred) {
  std::shared_ptr<Adopted> e = entryFor(c.comm);
  {
    std::lock_guard<std::timed_mutex> lock(e->mu);
    if (adopt(*e, c.comm)) {
      sqzResult_t r;
      {
        InSqz guard;
        r = sqzAllReduceEx(c.send, c.recv, c.count, static_cast<sqzDataType_t>(c.type),
                           static_cast<sqzRedOp_t>(c.op), nullptr, nullptr, e->sqz,
                           reinterpret_cast<sqzCudaStream_t>(c.stream));
      }
      if (r != sqzSuccess) {
        ++g_counts.failed;
        SQZ_LOG("WARN", "ncclAllReduce of %zu %s served by sqz failed: %s (%s)", c.count, typeName(c.type),
                sqzGetErrorString(r), sqzGetLastError(e->sqz));
        return toNccl(r);
      }
      ++g_counts.served;
      if (deferred) ++g_counts.servedDeferred;
      if (infoLogging() && !e->loggedServed) {
        e->loggedServed = true;
        sqzCallInfo info{};
        sqzGetCallInfo(e->sqz, &info);
        SQZ_LOG("INFO", "intercepted ncclAllReduce on ncclComm %p: %zu %s %s%s, served by sqz plan %s (codec %s, "
                "%zu wire bytes, ratio %.2f)", static_cast<void*>(c.comm), c.count, typeName(c.type),
                c.op == ncclAvg ? "avg" : "sum", deferred ? " (deferred to ncclGroupEnd)" : "", info.plan,
                info.codec, info.wireBytes, info.compressionRatio);
      }
      return ncclSuccess;
    }
    if (e->configError != sqzSuccess) {
      ++g_counts.failed;
      return toNccl(e->configError);
    }
  }
  ++g_counts.forwardedUnadoptable;
  logForwardedOnce(*e, c, "sqz could not adopt its communicator");
  return forward(c);
}

}  // namespace

SQZ_EXPORT ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                      ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  return noThrow("ncclAllReduce", [&]() -> ncclResult_t {
    const AllReduceCall c{sendbuff, recvbuff, count, datatype, op, comm, stream};
    if (t_inSqz) return forward(c);  // sqz's own calls
    const Route how = route(count, datatype, op);
    if (how == Route::kBadConfig) {
      ++g_counts.failed;
      return ncclInvalidArgument;
    }
    if (how == Route::kForward) {
      ++g_counts.forwardedIneligible;
      logForwardedOnce(*entryFor(comm), c, "not eligible");
      return forward(c);
    }
    if (t_groupDepth == 0) return serve(c, false);
    std::shared_ptr<Adopted> e = entryFor(comm);
    bool unservable;
    {
      std::lock_guard<std::timed_mutex> lock(e->mu);
      unservable = e->unservable;
    }
    if (unservable) {
      ++g_counts.forwardedUnadoptable;
      return forward(c);
    }
    t_deferred.push_back(c);
    return ncclSuccess;
  });
}

SQZ_EXPORT ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  return noThrow("ncclCommFinalize", [&]() -> ncclResult_t {
    auto real = SQZ_REAL(ncclCommFinalize);
    // NCCL's side is released even if releasing sqz's could not be.
    if (!t_inSqz) noThrow("ncclCommFinalize", [&] { return release(comm), ncclSuccess; });
    return real ? real(comm) : ncclSystemError;
  });
}

SQZ_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  return noThrow("ncclCommDestroy", [&]() -> ncclResult_t {
    auto real = SQZ_REAL(ncclCommDestroy);
    // NCCL's side is released even if releasing sqz's could not be.
    if (!t_inSqz) noThrow("ncclCommDestroy", [&] { return release(comm), ncclSuccess; });
    return real ? real(comm) : ncclSystemError;
  });
}

// An abort ends a communicator whose work may hang (a dead peer), possibly
// from another thread while a call is being served on it (PyTorch's
// watchdog). NCCL's side is aborted first: that ends the NCCL work sqz's
// side may be waiting for (tearing sqz down first would wait for it). The
// sqz side is then aborted once no call is inside it: a serving call gets
// SQZ_TIMEOUT (sqz's own bound on every wait) and a second to leave, and if
// it does not, the sqz communicator is left allocated, never freed under it.
// sqz never aborts or destroys the adopted ncclComm itself.
SQZ_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  return noThrow("ncclCommAbort", [&]() -> ncclResult_t {
    auto real = SQZ_REAL(ncclCommAbort);
    if (!real) return ncclSystemError;
    if (t_inSqz) return real(comm);
    std::shared_ptr<Adopted> e = takeEntry(comm);
    ncclResult_t r = real(comm);
    if (!e) return r;
    std::unique_lock<std::timed_mutex> lock(e->mu, std::try_to_lock);
    if (!lock.owns_lock()) {
      SQZ_LOG("WARN", "ncclCommAbort on ncclComm %p while sqz serves a call on it: waiting for that call to leave",
              static_cast<void*>(comm));
      const auto bound = std::chrono::duration<double>(sqz::timeoutSecondsOrDefault() + 1.0);
      if (!lock.try_lock_for(std::chrono::duration_cast<std::chrono::milliseconds>(bound))) {
        SQZ_LOG("WARN", "a call on ncclComm %p is still inside sqz after SQZ_TIMEOUT: its sqz communicator is left "
                "allocated rather than freed under it", static_cast<void*>(comm));
        return r;
      }
    }
    dropSqz(*e, comm, true);
    return r;
  });
}

// NCCL's answer, or else the first asynchronous error of the calls sqz
// served on comm (they return before their transfers run, as NCCL's do).
SQZ_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError) {
  return noThrow("ncclCommGetAsyncError", [&]() -> ncclResult_t {
    auto real = SQZ_REAL(ncclCommGetAsyncError);
    if (!real) return ncclSystemError;
    ncclResult_t r = real(comm, asyncError);
    if (r != ncclSuccess || t_inSqz || !asyncError || *asyncError != ncclSuccess) return r;
    std::shared_ptr<Adopted> e;
    {
      std::lock_guard<std::mutex> lock(g_mapMutex);
      auto it = adoptedMap().find(comm);
      if (it != adoptedMap().end()) e = it->second;
    }
    if (e) {
      // try_lock: never wait behind a served call; its error shows next poll.
      std::unique_lock<std::timed_mutex> lock(e->mu, std::try_to_lock);
      if (lock.owns_lock() && e->sqz) {
        sqzResult_t sqzError = sqzSuccess;
        InSqz guard;
        if (sqzCommGetAsyncError(e->sqz, &sqzError) == sqzSuccess) *asyncError = toNccl(sqzError);
      }
    }
    return r;
  });
}

SQZ_EXPORT ncclResult_t ncclGroupStart() {
  return noThrow("ncclGroupStart", [&]() -> ncclResult_t {
    auto real = SQZ_REAL(ncclGroupStart);
    if (!real) return ncclSystemError;
    ncclResult_t r = real();
    if (r == ncclSuccess && !t_inSqz) ++t_groupDepth;
    return r;
  });
}

namespace {

// A non-blocking communicator's group may still be launching (ncclGroupEnd
// answered ncclInProgress): nothing else may be called on it until
// ncclCommGetAsyncError stops saying so.
ncclResult_t settle(ncclComm_t comm) {
  auto asyncError = SQZ_REAL(ncclCommGetAsyncError);
  if (!asyncError) return ncclSystemError;
  const sqz::Deadline deadline(sqz::timeoutSecondsOrDefault());
  for (;;) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = asyncError(comm, &state);
    if (r != ncclSuccess) return r;
    if (state != ncclInProgress) return state;
    if (deadline.expired()) return ncclInProgress;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// The outermost ncclGroupEnd of this thread's group with eligible calls.
ncclResult_t endGroupWithDeferred(std::vector<AllReduceCall> calls) {
  auto realEnd = SQZ_REAL(ncclGroupEnd);
  bool oneComm = true;
  for (const AllReduceCall& c : calls) oneComm = oneComm && c.comm == calls[0].comm;
  if (!oneComm) {
    // Forwarded whole, into the real group (see the top of this file).
    ncclResult_t first = ncclSuccess;
    for (const AllReduceCall& c : calls) {
      ++g_counts.forwardedGroupOfSeveralComms;
      logForwardedOnce(*entryFor(c.comm), c, "inside an NCCL group over several communicators");
      ncclResult_t r = forward(c);
      if (first == ncclSuccess) first = r;
    }
    ncclResult_t end = realEnd();
    return first != ncclSuccess ? first : end;
  }
  ncclResult_t end = realEnd();
  if (end == ncclInProgress) end = settle(calls[0].comm);
  if (end != ncclSuccess) {
    SQZ_LOG("WARN", "ncclGroupEnd failed (%d): its %zu deferred ncclAllReduce calls are not run", static_cast<int>(end),
            calls.size());
    return end;
  }
  ncclResult_t first = ncclSuccess;
  for (const AllReduceCall& c : calls) {
    ncclResult_t r = serve(c, true);
    if (first == ncclSuccess) first = r;
  }
  return first;
}

}  // namespace

SQZ_EXPORT ncclResult_t ncclGroupEnd() {
  return noThrow("ncclGroupEnd", [&]() -> ncclResult_t {
    auto real = SQZ_REAL(ncclGroupEnd);
    if (!real) return ncclSystemError;
    if (t_inSqz || t_groupDepth == 0) return real();
    if (--t_groupDepth > 0 || t_deferred.empty()) return real();
    std::vector<AllReduceCall> calls;
    calls.swap(t_deferred);
    return endGroupWithDeferred(std::move(calls));
  });
}
