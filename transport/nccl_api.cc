#include "transport/nccl_api.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "common/error.h"

namespace sqz {
namespace {

struct Loaded {
  NcclApi api;
  std::string error;  // empty when loaded
};

Loaded load() {
  Loaded l;
  void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) lib = dlopen("libnccl.so", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    const char* e = dlerror();
    l.error = std::string("cannot load libnccl.so.2: ") + (e ? e : "not found");
    return l;
  }
  // NCCL exports every collective twice, as nccl* and as its profiling
  // alias pnccl*; the p-name is the implementation, whatever else is loaded.
  auto find = [&](auto* slot, const char* name) {
    std::string p = std::string("p") + name;
    void* f = dlsym(lib, p.c_str());
    if (!f) f = dlsym(lib, name);
    if (!f && l.error.empty()) l.error = std::string("libnccl has no ") + name;
    *slot = reinterpret_cast<std::remove_reference_t<decltype(*slot)>>(f);
  };
  NcclApi& a = l.api;
  find(&a.getUniqueId, "ncclGetUniqueId");
  find(&a.commInitRank, "ncclCommInitRank");
  find(&a.commDestroy, "ncclCommDestroy");
  find(&a.commAbort, "ncclCommAbort");
  find(&a.commCount, "ncclCommCount");
  find(&a.commUserRank, "ncclCommUserRank");
  find(&a.commCuDevice, "ncclCommCuDevice");
  find(&a.commGetAsyncError, "ncclCommGetAsyncError");
  find(&a.getErrorString, "ncclGetErrorString");
  find(&a.getLastError, "ncclGetLastError");
  find(&a.allReduce, "ncclAllReduce");
  find(&a.allGather, "ncclAllGather");
  find(&a.broadcast, "ncclBroadcast");
  find(&a.send, "ncclSend");
  find(&a.recv, "ncclRecv");
  find(&a.groupStart, "ncclGroupStart");
  find(&a.groupEnd, "ncclGroupEnd");
  return l;
}

}  // namespace

const NcclApi* ncclApi(const char** why) {
  static const Loaded loaded = load();
  if (!loaded.error.empty()) {
    if (why) *why = loaded.error.c_str();
    return nullptr;
  }
  return &loaded.api;
}

void ncclCheck(NcclResult r, const char* what) {
  static const NcclApi unloaded{};  // no messages to give
  const NcclApi* api = r == kNcclSuccess || r == kNcclInProgress ? nullptr : ncclApi();
  ncclCheck(api ? *api : unloaded, r, what);
}

void ncclCheck(const NcclApi& api, NcclResult r, const char* what) {
  if (r == kNcclSuccess || r == kNcclInProgress) return;
  const char* msg = api.getErrorString ? api.getErrorString(r) : "NCCL error";
  const char* last = api.getLastError ? api.getLastError(nullptr) : "";
  sqzResult_t code = r == kNcclRemoteError ? sqzRemoteError
                     : r == kNcclInvalidArgument ? sqzInvalidArgument
                     : r == kNcclInvalidUsage ? sqzInvalidUsage
                     : r == kNcclUnhandledCudaError ? sqzUnhandledCudaError
                     : r == kNcclSystemError ? sqzSystemError
                                             : sqzInternalError;
  fail(code, "%s: %s%s%s", what, msg, last && *last ? ": " : "", last ? last : "");
}

}  // namespace sqz
