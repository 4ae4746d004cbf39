// libsqz_nccl.so: an NCCL interposer for LD_PRELOAD (DESIGN.md section 4).
//
// It defines ncclAllReduce only; every other nccl* symbol an application
// calls still binds to the real libnccl (the dynamic linker keeps looking
// past this library), so forwarding them needs no wrappers. ncclAllReduce
// decides per call whether sqz should serve it (SQZ_COMPRESSION set and not
// "none", float32/float16/bfloat16, sum or avg, at least SQZ_MIN_BYTES) and
// otherwise forwards to the real ncclAllReduce, found with
// dlsym(RTLD_NEXT) or, failing that, NCCL's own pncclAllReduce from
// dlopen("libnccl.so.2"): never this function again.
//
// Serving needs sqz's device-memory path (issue 6: stream-ordered kernels,
// NCCL transport, a communicator adopted from the application's ncclComm),
// which this build does not have; until it lands, eligible calls are
// reported under SQZ_DEBUG=INFO and forwarded, so an application behaves
// exactly as with NCCL alone.
#include <dlfcn.h>
#include <nccl.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace {

using AllReduceFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                                     cudaStream_t);

bool infoLogging() {
  static const bool on = [] {
    const char* v = std::getenv("SQZ_DEBUG");
    return v && (!strcasecmp(v, "INFO") || !strcasecmp(v, "TRACE"));
  }();
  return on;
}

AllReduceFn realAllReduce() {
  static AllReduceFn fn = [] {
    auto self = reinterpret_cast<AllReduceFn>(&ncclAllReduce);
    auto next = reinterpret_cast<AllReduceFn>(dlsym(RTLD_NEXT, "ncclAllReduce"));
    if (next && next != self) return next;
    // The application did not link libnccl before us: load it ourselves and
    // take NCCL's profiling entry point, which is the implementation itself.
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) lib = dlopen("libnccl.so", RTLD_NOW | RTLD_GLOBAL);
    AllReduceFn found = nullptr;
    if (lib) {
      found = reinterpret_cast<AllReduceFn>(dlsym(lib, "pncclAllReduce"));
      if (!found || found == self) found = reinterpret_cast<AllReduceFn>(dlsym(lib, "ncclAllReduce"));
    }
    if (found == self) found = nullptr;
    if (!found) std::fprintf(stderr, "sqz-nccl: WARN cannot find the real ncclAllReduce (%s)\n", dlerror());
    return found;
  }();
  return fn;
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

// Whether sqz would serve the call (compression asked for, a float sum or
// average, large enough), independent of whether this build can.
bool eligible(size_t count, ncclDataType_t type, ncclRedOp_t op) {
  const char* spec = std::getenv("SQZ_COMPRESSION");
  if (!spec || !*spec || !std::strcmp(spec, "none")) return false;
  if (type != ncclFloat32 && type != ncclFloat16 && type != ncclBfloat16) return false;
  if (op != ncclSum && op != ncclAvg) return false;
  const char* minText = std::getenv("SQZ_MIN_BYTES");
  size_t minBytes = minText && *minText ? std::strtoull(minText, nullptr, 10) : (64u << 10);
  return count * elementSize(type) >= minBytes;
}

std::atomic<bool> g_reportedEligible{false};

}  // namespace

extern "C" __attribute__((visibility("default"))) ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff,
                                                                             size_t count, ncclDataType_t datatype,
                                                                             ncclRedOp_t op, ncclComm_t comm,
                                                                             cudaStream_t stream) {
  if (eligible(count, datatype, op) && infoLogging() && !g_reportedEligible.exchange(true)) {
    std::fprintf(stderr,
                 "sqz-nccl: INFO ncclAllReduce of %zu elements is eligible for SQZ_COMPRESSION=%s, but this "
                 "build has no device-memory path; forwarding to NCCL\n",
                 count, std::getenv("SQZ_COMPRESSION"));
  }
  AllReduceFn real = realAllReduce();
  if (!real) return ncclSystemError;
  if (infoLogging()) std::fprintf(stderr, "sqz-nccl: INFO forwarding ncclAllReduce (%zu elements) to NCCL\n", count);
  return real(sendbuff, recvbuff, count, datatype, op, comm, stream);
}
