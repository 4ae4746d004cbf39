/* Calls NCCL the way an application does (linked against libnccl), so that
 * running it with and without LD_PRELOAD=libsqz_nccl.so shows whether the
 * interposer changes any answer. Needs no GPU: every call here is answered
 * by NCCL before it touches a device. */
#include <nccl.h>
#include <stdio.h>

int main(void) {
  int version = 0;
  ncclResult_t r = ncclGetVersion(&version);
  printf("ncclGetVersion: %d %d\n", (int)r, version);
  printf("ncclGetErrorString(ncclInvalidArgument): %s\n", ncclGetErrorString(ncclInvalidArgument));
  printf("ncclGetErrorString(ncclSystemError): %s\n", ncclGetErrorString(ncclSystemError));
  /* A NULL communicator: NCCL itself rejects it; through the interposer the
   * call must reach NCCL and come back with NCCL's answer. */
  r = ncclAllReduce(NULL, NULL, 1 << 20, ncclFloat32, ncclSum, NULL, NULL);
  printf("ncclAllReduce(comm=NULL): %d %s\n", (int)r, ncclGetErrorString(r));
  r = ncclAllReduce(NULL, NULL, 16, ncclInt32, ncclMax, NULL, NULL);
  printf("ncclAllReduce(int32 max, comm=NULL): %d\n", (int)r);
  /* Calls sqz would serve (float sums and averages, large) on a
   * communicator NCCL rejects: the interposer must not adopt it, nor crash,
   * but forward, so that NCCL's own error comes back. (NULL is the only
   * invalid communicator NCCL 2.28 checks without dereferencing it.) */
  r = ncclAllReduce(NULL, NULL, 1 << 20, ncclBfloat16, ncclAvg, NULL, NULL);
  printf("ncclAllReduce(bfloat16 avg, comm=NULL): %d\n", (int)r);
  int count = -1;
  r = ncclCommCount(NULL, &count);
  printf("ncclCommCount(comm=NULL): %d\n", (int)r);
  ncclResult_t async = ncclSuccess;
  r = ncclCommGetAsyncError(NULL, &async);
  printf("ncclCommGetAsyncError(comm=NULL): %d\n", (int)r);
  /* An empty group, and the calls that end a communicator's life (the
   * interposer wraps them to release its sqz side first). */
  r = ncclGroupStart();
  printf("ncclGroupStart: %d\n", (int)r);
  r = ncclGroupEnd();
  printf("ncclGroupEnd: %d\n", (int)r);
  r = ncclCommDestroy(NULL);
  printf("ncclCommDestroy(comm=NULL): %d\n", (int)r);
  r = ncclCommFinalize(NULL);
  printf("ncclCommFinalize(comm=NULL): %d\n", (int)r);
  r = ncclCommAbort(NULL);
  printf("ncclCommAbort(comm=NULL): %d\n", (int)r);
  return 0;
}
