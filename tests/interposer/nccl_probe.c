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
  return 0;
}
