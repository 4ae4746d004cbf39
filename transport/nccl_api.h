// NCCL, loaded at run time with dlopen("libnccl.so.2"): libsqz loads (and
// serves host buffers) on machines without NCCL, builds need no nccl.h, and
// sqz's own collectives bind to the real library even when libsqz_nccl.so
// is LD_PRELOADed in front of it (symbols are looked up through the
// library's own handle, preferring NCCL's pnccl* aliases, so they never
// resolve to the interposer). The declarations below are the slice of
// NCCL's stable C ABI that sqz calls (as in nccl.h since 2.x).
#pragma once

#include <cstddef>

struct ncclComm;       // NCCL's opaque communicator (nccl.h: ncclComm_t)
struct CUstream_st;    // cudaStream_t

namespace sqz {

using NcclComm = ::ncclComm*;
using NcclStream = ::CUstream_st*;
struct NcclUniqueId {
  char internal[128];  // NCCL_UNIQUE_ID_BYTES
};
using NcclResult = int;  // ncclResult_t
constexpr NcclResult kNcclSuccess = 0, kNcclUnhandledCudaError = 1, kNcclSystemError = 2, kNcclInternalError = 3,
                     kNcclInvalidArgument = 4, kNcclInvalidUsage = 5, kNcclRemoteError = 6, kNcclInProgress = 7;
constexpr int kNcclUint8 = 1;  // ncclUint8; sqzDataType_t and sqzRedOp_t carry NCCL's numbers

struct NcclApi {
  NcclResult (*getUniqueId)(NcclUniqueId*) = nullptr;
  NcclResult (*commInitRank)(NcclComm*, int, NcclUniqueId, int) = nullptr;
  NcclResult (*commDestroy)(NcclComm) = nullptr;
  NcclResult (*commAbort)(NcclComm) = nullptr;
  NcclResult (*commCount)(NcclComm, int*) = nullptr;
  NcclResult (*commUserRank)(NcclComm, int*) = nullptr;
  NcclResult (*commCuDevice)(NcclComm, int*) = nullptr;
  NcclResult (*commGetAsyncError)(NcclComm, NcclResult*) = nullptr;
  const char* (*getErrorString)(NcclResult) = nullptr;
  const char* (*getLastError)(NcclComm) = nullptr;
  NcclResult (*allReduce)(const void*, void*, size_t, int, int, NcclComm, NcclStream) = nullptr;
  NcclResult (*allGather)(const void*, void*, size_t, int, NcclComm, NcclStream) = nullptr;
  NcclResult (*broadcast)(const void*, void*, size_t, int, int, NcclComm, NcclStream) = nullptr;
  NcclResult (*send)(const void*, size_t, int, int, NcclComm, NcclStream) = nullptr;
  NcclResult (*recv)(void*, size_t, int, int, NcclComm, NcclStream) = nullptr;
  NcclResult (*groupStart)() = nullptr;
  NcclResult (*groupEnd)() = nullptr;
};

// The loaded library, or null (with *why set) when it cannot be loaded.
const NcclApi* ncclApi(const char** why = nullptr);

// Throws sqz::Error for a failed NCCL call, with api's message (the loaded
// library's in the one-argument form). ncclInProgress is not a failure: a
// non-blocking communicator's call that is still being set up (see
// NcclTransport, which waits for it to settle).
void ncclCheck(const NcclApi& api, NcclResult r, const char* what);
void ncclCheck(NcclResult r, const char* what);

}  // namespace sqz
