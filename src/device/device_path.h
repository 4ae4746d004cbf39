// The device-memory path of a communicator (issue 6; DESIGN.md section 2):
// sqzAllReduce on GPU buffers, enqueued on the caller's stream, returning
// without waiting for the GPU.
//
// Plans on device buffers (registry names, src/tuner/plan_name.h):
//   ring          exact: ncclAllReduce, or the host ring over staged buffers
//   gather:CODEC  each rank encodes g + e once (residual kept on the device),
//                 the fixed-size payloads are allgathered, every rank decodes
//                 all N in rank order into fp32: bitwise-identical outputs,
//                 one quantization per contribution
//   randk:randk:R the K shared-index values (and a non-finite flag) go
//                 through an exact fp32 allreduce
// Transports: NCCL (each rank its own GPU) or host staging through pinned
// memory with a progress thread (src/device/staging_engine.h): only encoded
// bytes cross PCIe, and several ranks may share a GPU.
//
// Where the host blocks (the only places): the first device call (choosing
// the transport, creating the NCCL communicator); the first `auto` call on a
// buffer (its statistics are reduced before choosing, "sync" mode); a later
// `auto` call whose previous call on the same buffer has not finished (the
// lagged statistics event); calls after the staging queue is full. Under CUDA
// graph capture the plan is frozen (no statistics are read back); host
// staging refuses capture.
//
// Never behind a spinning wait: with host staging a wait kernel holds a
// stream until the progress thread has finished a transfer that needs the
// other ranks' later calls, and those ranks may be threads of this process.
// So nothing that can run while a wait spins waits for the device: every
// kernel is loaded when the first DevicePath on a device is made (lazy
// module loading would load one at its first launch, which may wait for the
// device to go idle); buffer states are freed stream-ordered, without
// cudaFree or cudaFreeHost; the staging engine launches and allocates
// outside its lock. Only teardown waits for the GPU. Pinned allocations
// (cudaHostAlloc, first calls of a new size) are made while waits spin, as
// frameworks' pinned-memory caches do next to NCCL's spinning kernels.
//
// Non-finite values: every payload carries its rank's statistics; when any
// rank's buffer held NaN/Inf, the output is NaN everywhere (as an exact sum
// would be non-finite, so loss scalers still see the overflow) and the
// residual is cleared. The host path instead sends such a call exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sqz.h"

namespace sqz {

class Communicator;
struct CompressionPolicy;

class DevicePath {
 public:
  // Binds to the calling thread's current CUDA device.
  explicit DevicePath(Communicator& comm);
  ~DevicePath();
  DevicePath(const DevicePath&) = delete;
  DevicePath& operator=(const DevicePath&) = delete;

  // Uses an existing NCCL communicator (sqzCommInitFromNccl; not owned:
  // never destroyed nor aborted by sqz).
  void adoptNccl(void* ncclComm);

  // stateKey: the explicit sqzState, or null for an implicit call
  // (src/implicit_states.h: no residual); call: the communicator's
  // allreduce count (the codecs' step for implicit calls).
  void allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op, void* stream,
                 const CompressionPolicy& policy, const void* stateKey, uint64_t call);

  // An explicit sqzState is being destroyed: free its device state (after
  // the GPU is done with it), so a new state at the same address starts clean.
  void forgetState(const void* key);
  // Host transport users call this first: the progress thread must be idle.
  void drain();
  // The first asynchronous error, or sqzSuccess (message in *why).
  sqzResult_t asyncError(std::string* why);
  void abort();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// For sqzCommInitFromNccl: an NCCL communicator's rank and size (checking
// that it lives on the current device), and a broadcast of n host bytes from
// its rank 0 through device memory (synchronous; init only).
void ncclRankAndSize(void* ncclComm, int* rank, int* size);
void ncclBroadcastHostBytes(void* ncclComm, void* bytes, size_t n);

}  // namespace sqz
