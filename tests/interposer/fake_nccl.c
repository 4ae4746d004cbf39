/* A fake libnccl.so.2 for the interposer's CPU tests: the NCCL calls an
 * application and the interposer make, answered without a GPU, each one
 * appended to a log the test reads back (fakeNcclLog). Communicators are
 * whatever non-null pointer the test passes; every one has 2 ranks.
 * FAKE_NCCL_INPROGRESS=N makes ncclGroupEnd answer ncclInProgress, and
 * ncclCommGetAsyncError then answer ncclInProgress N times (a non-blocking
 * communicator still launching the group). */
#include <nccl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_log[16384];
static int g_depth;
static int g_inProgress;

static void note(const char* fmt, ...) {
  size_t used = strlen(g_log);
  if (used > 0 && used + 3 < sizeof g_log) strcat(g_log, " | ");
  used = strlen(g_log);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_log + used, sizeof g_log - used, fmt, ap);
  va_end(ap);
}

/* The test's handles are small integers cast to pointers. */
static int id(ncclComm_t comm) { return (int)(size_t)comm; }

const char* fakeNcclLog(void) { return g_log; }
void fakeNcclReset(void) { g_log[0] = 0; }

ncclResult_t ncclGroupStart(void) {
  ++g_depth;
  note("groupStart");
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
  --g_depth;
  note("groupEnd");
  const char* n = getenv("FAKE_NCCL_INPROGRESS");
  g_inProgress = n ? atoi(n) : 0;
  return g_inProgress > 0 ? ncclInProgress : ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  (void)sendbuff, (void)recvbuff, (void)op, (void)stream;
  if (!comm) return ncclInvalidArgument;
  note("allreduce comm=%d count=%zu type=%d%s", id(comm), count, (int)datatype, g_depth ? " in-group" : "");
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (!comm) return ncclInvalidArgument;
  *count = 2;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (!comm) return ncclInvalidArgument;
  *rank = 0;
  return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
  if (!comm) return ncclInvalidArgument;
  *device = 0;
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError) {
  if (!comm) return ncclInvalidArgument;
  if (g_inProgress > 0) {
    --g_inProgress;
    note("asyncError=inProgress");
    *asyncError = ncclInProgress;
  } else {
    *asyncError = ncclSuccess;
  }
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  note("destroy comm=%d", id(comm));
  return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  note("finalize comm=%d", id(comm));
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  note("abort comm=%d", id(comm));
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) { return result == ncclSuccess ? "no error" : "fake error"; }
const char* ncclGetLastError(ncclComm_t comm) {
  (void)comm;
  return "";
}
