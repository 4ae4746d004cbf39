/* sqz: compressed collectives for GPU clusters and edge devices.
 *
 * The API is shaped like NCCL's, with NCCL's enum numbering, so that a shim
 * can pass values straight through. Every function returns a status code;
 * no C++ exception ever crosses this boundary. When a call fails, the
 * communicator's last error message (sqzGetLastError) says why. */
#ifndef SQZ_H_
#define SQZ_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SQZ_API __attribute__((visibility("default")))
#else
#define SQZ_API
#endif

#define SQZ_MAJOR 0
#define SQZ_MINOR 1
#define SQZ_PATCH 0
/* Same encoding as NCCL_VERSION_CODE for versions >= 2.9. */
#define SQZ_VERSION_CODE (SQZ_MAJOR * 10000 + SQZ_MINOR * 100 + SQZ_PATCH)

/* A CUDA stream, declared opaquely so that this header does not need
 * cuda_runtime.h. Compatible with cudaStream_t (struct CUstream_st*). */
#ifndef SQZ_CUDA_STREAM_DECLARED
#define SQZ_CUDA_STREAM_DECLARED
typedef struct CUstream_st* sqzCudaStream_t;
#endif

typedef enum {
  sqzSuccess = 0,
  sqzUnhandledCudaError = 1,
  sqzSystemError = 2,
  sqzInternalError = 3,
  sqzInvalidArgument = 4,
  sqzInvalidUsage = 5,
  sqzRemoteError = 6,
  sqzInProgress = 7,
  sqzTimeout = 8,
  sqzNumResults = 9
} sqzResult_t;

typedef enum {
  sqzInt8 = 0,
  sqzChar = 0,
  sqzUint8 = 1,
  sqzInt32 = 2,
  sqzInt = 2,
  sqzUint32 = 3,
  sqzInt64 = 4,
  sqzUint64 = 5,
  sqzFloat16 = 6,
  sqzHalf = 6,
  sqzFloat32 = 7,
  sqzFloat = 7,
  sqzFloat64 = 8,
  sqzDouble = 8,
  sqzBfloat16 = 9,
  sqzNumTypes = 10
} sqzDataType_t;

typedef enum {
  sqzSum = 0,
  sqzProd = 1,
  sqzMax = 2,
  sqzMin = 3,
  sqzAvg = 4,
  sqzNumOps = 5
} sqzRedOp_t;

#define SQZ_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[SQZ_UNIQUE_ID_BYTES];
} sqzUniqueId;

typedef struct sqzComm* sqzComm_t;

/* Library version as SQZ_VERSION_CODE. */
SQZ_API sqzResult_t sqzGetVersion(int* version);

/* Creates the rendezvous for a new communicator: picks a listen address
 * (SQZ_SOCKET_IFNAME, else the first up non-loopback interface, else
 * loopback), starts the root in the calling process, and writes host, port
 * and a fresh 128-bit secret into *uniqueId. Call on one rank and pass the
 * id to all others (e.g. with MPI_Bcast). */
SQZ_API sqzResult_t sqzGetUniqueId(sqzUniqueId* uniqueId);

/* Collective over nranks processes (or threads): every rank calls it with
 * the same id and its own rank in [0, nranks). Waits at most SQZ_TIMEOUT. */
SQZ_API sqzResult_t sqzCommInitRank(sqzComm_t* comm, int nranks, sqzUniqueId commId,
                            int rank);

/* Like sqzCommInitRank, with rank, size and the rendezvous taken from a
 * launcher's environment: torchrun (RANK, WORLD_SIZE, LOCAL_RANK,
 * MASTER_ADDR, MASTER_PORT), Open MPI (OMPI_COMM_WORLD_*), SLURM
 * (SLURM_PROCID, SLURM_NTASKS). The rendezvous is SQZ_ROOT=host:port when
 * set, else MASTER_ADDR and port MASTER_PORT+1 (torchrun's own store holds
 * MASTER_PORT). The secret is SQZ_SECRET when set; see the README for the
 * trade-off when it is not. */
SQZ_API sqzResult_t sqzCommInitFromEnv(sqzComm_t* comm);

/* NCCL's communicator handle, declared opaquely (the same type as nccl.h's
 * ncclComm_t) so that this header does not need nccl.h. */
#ifndef SQZ_NCCL_COMM_DECLARED
#define SQZ_NCCL_COMM_DECLARED
typedef struct ncclComm* sqzNcclComm_t;
#endif

/* Collective over the ranks of an existing NCCL communicator: every NCCL
 * rank calls it; NCCL rank r becomes sqz rank r. The rendezvous id travels
 * by ncclBroadcast on the communicator's device, so the caller's current
 * CUDA device must be the one ncclComm was created on. Device-buffer calls
 * then use ncclComm (the caller keeps ownership: sqzCommDestroy does not
 * destroy it, and it must outlive the sqz communicator); host buffers use
 * sqz's own UCX transport. sqzInvalidUsage when this build or machine has
 * no CUDA or NCCL. */
SQZ_API sqzResult_t sqzCommInitFromNccl(sqzComm_t* comm, sqzNcclComm_t ncclComm);

/* The first error found asynchronously on comm (sqzSuccess if none), as
 * ncclCommGetAsyncError: device-buffer calls return before their transfers
 * run. A communicator with an asynchronous error fails every later call;
 * destroy or abort it. */
SQZ_API sqzResult_t sqzCommGetAsyncError(sqzComm_t comm, sqzResult_t* asyncError);

/* Frees the communicator after all its operations have finished (for
 * device buffers: it waits until the GPU has passed every call enqueued on
 * this communicator, since their staging memory is freed). */
SQZ_API sqzResult_t sqzCommDestroy(sqzComm_t comm);
/* Frees the communicator without waiting for peers; pending and future
 * operations of peers on it fail with sqzRemoteError or sqzTimeout. */
SQZ_API sqzResult_t sqzCommAbort(sqzComm_t comm);

SQZ_API sqzResult_t sqzCommCount(const sqzComm_t comm, int* count);
SQZ_API sqzResult_t sqzCommUserRank(const sqzComm_t comm, int* rank);

/* Compression policy of the communicator for sqzAllReduce: "none", "bf16",
 * "fp16", "q8", "q4", "q2", "q1", "topk:RATIO", "randk:RATIO", "auto"
 * (the specs the library supports; others give sqzInvalidArgument). */
SQZ_API sqzResult_t sqzCommSetCompression(sqzComm_t comm, const char* spec);

/* The training optimizer the gradients feed (overrides SQZ_OPTIMIZER and
 * SQZ_MOMENTUM): optimizer "sgd" (SGD, with or without momentum) or "adam"
 * (an optimizer that divides by the root of a second moment: Adam, AdamW,
 * RMSprop, Adagrad); momentum in [0, 1): SGD's momentum or Adam's beta1.
 * "auto" prices its choices for it, and under "adam" the stochastic
 * quantizers and the bf16/fp16 casts keep no error-feedback residual on a
 * state (it would add to Adam's second moment; src/tuner/README.md section
 * 7) while top-K, random-K and the scaled sign keep theirs. Every rank sets
 * the same values between calls (calls check that ranks agree). Bad values
 * give sqzInvalidArgument. */
SQZ_API sqzResult_t sqzCommSetOptimizer(sqzComm_t comm, const char* optimizer, double momentum);

/* Allreduce of count elements. sendbuff == recvbuff is in place. count == 0
 * is a successful no-op. Floating-point sums may be compressed according to
 * the communicator's policy; every rank receives bitwise-identical output.
 *
 * Host buffers (pageable or pinned): synchronous; stream may be NULL and is
 * ignored. Device (or managed) buffers, both of them: asynchronous, as
 * ncclAllReduce: the call is enqueued on `stream` (NULL: the legacy default
 * stream) and returns; recvbuff holds the result when the stream reaches
 * that point. Errors found after the call returned (a dead peer, a timeout)
 * are reported by sqzCommGetAsyncError and by every later call on comm.
 * The transport for device buffers is SQZ_TRANSPORT: "nccl" (every rank on
 * its own GPU), "ucx" (encoded payloads staged through pinned host memory
 * by a progress thread; several ranks may share a GPU, each on its own
 * stream, not the legacy default stream), or "auto" (nccl when every rank
 * has its own GPU and NCCL is present, else ucx). A call mixing host and
 * device memory is sqzInvalidUsage. */
SQZ_API sqzResult_t sqzAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                         sqzDataType_t datatype, sqzRedOp_t op, sqzComm_t comm,
                         sqzCudaStream_t stream);

/* Every rank receives root's count elements in recvbuff (exact). On root,
 * sendbuff is the source; elsewhere it is ignored. */
SQZ_API sqzResult_t sqzBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                         sqzDataType_t datatype, int root, sqzComm_t comm,
                         sqzCudaStream_t stream);

/* recvbuff[r * sendcount ...] receives rank r's sendcount elements. */
SQZ_API sqzResult_t sqzAllGather(const void* sendbuff, void* recvbuff,
                         size_t sendcount, sqzDataType_t datatype,
                         sqzComm_t comm, sqzCudaStream_t stream);

/* Error-feedback and tuning state for one logical buffer (e.g. one gradient
 * bucket): the residual of what compression left out, carried into the next
 * call, and the buffer's statistics for the tuner. */
typedef struct sqzState* sqzState_t;
SQZ_API sqzResult_t sqzStateCreate(sqzComm_t comm, size_t count, sqzDataType_t datatype, sqzState_t* state);
SQZ_API sqzResult_t sqzStateDestroy(sqzState_t state);

/* sqzAllReduce with an explicit compression spec (NULL: the communicator's
 * policy) and state (NULL: keyed internally by (recvbuff, count)). Integer
 * types, sqzProd/Max/Min and buffers below SQZ_MIN_BYTES always take the
 * exact path. sqzAvg with a lossy codec is the compressed sum divided once. */
SQZ_API sqzResult_t sqzAllReduceEx(const void* sendbuff, void* recvbuff, size_t count, sqzDataType_t datatype,
                                   sqzRedOp_t op, const char* spec, sqzState_t state, sqzComm_t comm,
                                   sqzCudaStream_t stream);

/* What the last allreduce on a communicator did. */
typedef struct {
  char algorithm[32];       /* registry name, e.g. "ring", "qa2a", "sparse_ag" */
  char codec[48];           /* codec spec that ran, e.g. "q4", "topk:0.01", "none" */
  char plan[128];           /* printable plan name; forcing it reproduces the call */
  int exact;                /* 1 when the exact (uncompressed) path ran */
  size_t count;             /* elements */
  size_t bytes;             /* count * element size */
  size_t wireBytes;         /* bytes this rank sent (with auto's statistics, when they went out) */
  double compressionRatio;  /* dense ring bytes / wireBytes */
  double gain;              /* estimated fraction of squared norm kept, 1 when exact */
  double encodeSeconds, transferSeconds, decodeSeconds, totalSeconds;
} sqzCallInfo;
SQZ_API sqzResult_t sqzGetCallInfo(sqzComm_t comm, sqzCallInfo* info);

/* SQZ_TIMELINE=path makes each rank write a Chrome-trace file (path, with
 * ".rank<N>" before the extension when nranks > 1) holding every allreduce:
 * plan, bytes, and time in tune / encode / transfer / decode. Callers add
 * their own complete events to the same file with this (start on the
 * monotonic clock, e.g. Python's time.perf_counter(); argsJson: a JSON
 * object or NULL). sqzInvalidUsage when no timeline is being written. */
SQZ_API sqzResult_t sqzTimelineRecord(sqzComm_t comm, const char* name, const char* category, int lane,
                                      double startSeconds, double durationSeconds, const char* argsJson);

/* Returns once every rank has entered the barrier (bounded by SQZ_TIMEOUT). */
SQZ_API sqzResult_t sqzBarrier(sqzComm_t comm);

/* The next collective call on comm (allreduce, broadcast, allgather or
 * barrier) carries `tag` in its call header, compared across ranks as count
 * and type are: ranks whose tags differ all fail that call with
 * sqzInvalidUsage, and the communicator keeps working. Bindings put there
 * what the C arguments cannot show (a tensor's name and shape, the layout of
 * a fused buffer). The call consumes the tag, even when it fails; 0 is no
 * tag. Host buffers only: a device-buffer allreduce with a tag set is
 * sqzInvalidUsage. */
SQZ_API sqzResult_t sqzCommSetCallTag(sqzComm_t comm, uint64_t tag);

/* Horovod's join, for uneven data: this rank has no more work. Until every
 * rank has called sqzJoin, it serves the other ranks' host allreduces with
 * zeros (sqzAvg still divides by nranks); those run on the exact path, and
 * any other collective (broadcast, allgather, barrier, a device-buffer
 * allreduce) fails with sqzInvalidUsage on the ranks that called it. Returns
 * on every rank once all have joined, with *lastJoinedRank the rank that
 * joined last: the one with the most calls before joining; among those,
 * the one that entered last by the wall clock, where entries less than
 * 100 ms apart count as together and the highest rank of them is last.
 * Each wait for the others' next call is bounded by SQZ_TIMEOUT. */
SQZ_API sqzResult_t sqzJoin(sqzComm_t comm, int* lastJoinedRank);

/* What this build serves: a bit set of SQZ_FEATURE_* flags. */
/* Device (CUDA) buffers are served. A build without it cannot tell device
 * pointers from host ones: callers must keep device memory away from it. */
#define SQZ_FEATURE_CUDA 1
SQZ_API sqzResult_t sqzGetFeatures(int* features);

/* A human-readable string for a status code. */
SQZ_API const char* sqzGetErrorString(sqzResult_t result);

/* The message of the last failed call on comm (or, for comm == NULL, of the
 * last failed call in this thread that had no communicator). "" if none. */
SQZ_API const char* sqzGetLastError(sqzComm_t comm);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SQZ_H_ */
