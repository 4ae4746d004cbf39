#include "perf/perf_driver.h"

#include <mpi.h>
#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef SQZ_PERF_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace sqz::perf {
namespace {

const char* kTypeNames[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64", "half", "float", "double", "bfloat16"};
const char* kOpNames[] = {"sum", "prod", "max", "min", "avg"};
const size_t kTypeSizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};

size_t parseBytes(const char* s) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  switch (*end) {
    case 'K': case 'k': v *= 1024; break;
    case 'M': case 'm': v *= 1024 * 1024; break;
    case 'G': case 'g': v *= 1024.0 * 1024 * 1024; break;
    default: break;
  }
  return static_cast<size_t>(v);
}

void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s [-b minbytes] [-e maxbytes] [-f stepfactor] [-i stepbytes] [-n iters] [-w warmup]\n"
               "          [-c check 0/1] [-d type|all] [-o op|all] [-m mpi-baseline 0/1] [-Z compression]\n"
               "          [-G device-buffers 0/1]\n"
               "  -G 1  buffers in GPU memory (as nccl-tests): each rank uses GPU LOCAL_RANK %% #GPUs, enqueues\n"
               "        every call on its own CUDA stream and synchronizes the stream after each call, so a\n"
               "        call's time includes the GPU's work. The device transport is SQZ_TRANSPORT\n"
               "        (auto|nccl|ucx). Needs a CUDA device; without one the run stops with an error.\n"
               "Launch with mpirun (or torchrun-style RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT).\n",
               prog);
}

Options parse(int argc, char** argv) {
  Options o;
  int c;
  while ((c = getopt(argc, argv, "b:e:f:i:n:w:c:d:o:m:Z:G:h")) != -1) {
    switch (c) {
      case 'b': o.minBytes = parseBytes(optarg); break;
      case 'e': o.maxBytes = parseBytes(optarg); break;
      case 'f': o.stepFactor = std::atof(optarg); break;
      case 'i': o.stepBytes = parseBytes(optarg); break;
      case 'n': o.iters = std::atoi(optarg); break;
      case 'w': o.warmup = std::atoi(optarg); break;
      case 'c': o.check = std::atoi(optarg); break;
      case 'm': o.mpiBaseline = std::atoi(optarg) != 0; break;
      case 'Z': o.compression = optarg; break;
      case 'G': o.deviceBuffers = std::atoi(optarg) != 0; break;
      case 'd':
        o.types.clear();
        for (int t = 0; t < sqzNumTypes; ++t)
          if (!std::strcmp(optarg, "all") || !std::strcmp(optarg, kTypeNames[t])) o.types.push_back(static_cast<sqzDataType_t>(t));
        if (o.types.empty()) { usage(argv[0]); std::exit(2); }
        break;
      case 'o':
        o.ops.clear();
        for (int p = 0; p < sqzNumOps; ++p)
          if (!std::strcmp(optarg, "all") || !std::strcmp(optarg, kOpNames[p])) o.ops.push_back(static_cast<sqzRedOp_t>(p));
        if (o.ops.empty()) { usage(argv[0]); std::exit(2); }
        break;
      default: usage(argv[0]); std::exit(c == 'h' ? 0 : 2);
    }
  }
  if (o.maxBytes < o.minBytes) o.maxBytes = o.minBytes;
  if (o.iters < 1) o.iters = 1;
  return o;
}

[[noreturn]] void die(const Env& env, const char* what, sqzResult_t r) {
  std::fprintf(stderr, "rank %d: %s failed: %s (%s)\n", env.rank, what, sqzGetErrorString(r), sqzGetLastError(env.comm));
  if (env.mpi) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

[[maybe_unused]] int localRank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

// -G 1 before anything else starts: a GPU for this rank and a stream, or a
// clear error (a host without a usable CUDA device, a build without CUDA).
void selectDevice(Env& env) {
#ifdef SQZ_PERF_HAVE_CUDA
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::fprintf(stderr, "sqz_allreduce_perf: -G 1 needs a CUDA device, and there is none usable here (%s)\n",
                 e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount reports 0 devices");
    std::exit(1);
  }
  cudaStream_t stream = nullptr;
  e = cudaSetDevice(localRank() % count);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    std::fprintf(stderr, "sqz_allreduce_perf: -G 1: cannot use GPU %d: %s\n", localRank() % count,
                 cudaGetErrorString(e));
    std::exit(1);
  }
  env.device = true;
  env.stream = reinterpret_cast<sqzCudaStream_t>(stream);
#else
  (void)env;
  std::fprintf(stderr, "sqz_allreduce_perf: -G 1 needs device buffers, and this build has no CUDA\n");
  std::exit(1);
#endif
}

[[noreturn, maybe_unused]] void dieCuda(const Env& env, const char* what, const char* why) {
  std::fprintf(stderr, "rank %d: %s failed: %s\n", env.rank, what, why);
  if (env.mpi) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

// One of the collective's buffers: host memory, or with -G 1 device memory
// with a host mirror that the driver fills and checks.
class Buffer {
 public:
  Buffer(const Env& env, size_t bytes) : env_(env), host_(bytes), bytes_(bytes) {
#ifdef SQZ_PERF_HAVE_CUDA
    if (env.device) {
      cudaError_t e = cudaMalloc(&device_, std::max<size_t>(bytes, 1));
      if (e != cudaSuccess) dieCuda(env, "cudaMalloc", cudaGetErrorString(e));
    }
#endif
  }
  ~Buffer() {
#ifdef SQZ_PERF_HAVE_CUDA
    if (device_) cudaFree(device_);
#endif
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  unsigned char* host() { return host_.data(); }
  // What the collective gets.
  void* data() { return device_ ? device_ : static_cast<void*>(host_.data()); }
  // Host mirror -> device, device -> host mirror, zero both (each complete
  // when it returns; no-ops on host buffers except zero).
  void push() { copy(device_, host_.data(), true); }
  void pull() { copy(host_.data(), device_, false); }
  void zero() {
    std::memset(host_.data(), 0, bytes_);
    push();
  }

 private:
  void copy(void* dst, const void* src, bool toDevice) {
#ifdef SQZ_PERF_HAVE_CUDA
    if (!device_) return;
    auto stream = reinterpret_cast<cudaStream_t>(env_.stream);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes_, toDevice ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                    stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) dieCuda(env_, toDevice ? "copy to the device" : "copy from the device", cudaGetErrorString(e));
#else
    (void)dst, (void)src, (void)toDevice;
#endif
  }

  const Env& env_;
  std::vector<unsigned char> host_;
  size_t bytes_;
  void* device_ = nullptr;
};

// With -G 1: waits for the stream (each timed call, as nccl-tests' blocking
// mode does), and reports an asynchronous error of the communicator.
void syncStream(const Env& env) {
#ifdef SQZ_PERF_HAVE_CUDA
  if (!env.device) return;
  cudaError_t e = cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(env.stream));
  if (e != cudaSuccess) dieCuda(env, "cudaStreamSynchronize", cudaGetErrorString(e));
  sqzResult_t asyncError = sqzSuccess;
  if (sqzCommGetAsyncError(env.comm, &asyncError) == sqzSuccess && asyncError != sqzSuccess)
    dieCuda(env, "an enqueued collective", sqzGetErrorString(asyncError));
#else
  (void)env;
#endif
}

Env setup(int argc, char** argv, bool deviceBuffers) {
  Env env;
  if (deviceBuffers) selectDevice(env);
  // torchrun (or sqz.run) sets RANK/WORLD_SIZE; otherwise expect mpirun.
  if (std::getenv("RANK") && std::getenv("WORLD_SIZE") && !std::getenv("OMPI_COMM_WORLD_RANK")) {
    sqzResult_t r = sqzCommInitFromEnv(&env.comm);
    if (r != sqzSuccess) die(env, "sqzCommInitFromEnv", r);
  } else {
    env.mpi = true;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &env.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &env.nranks);
    sqzUniqueId id;
    if (env.rank == 0) {
      sqzResult_t r = sqzGetUniqueId(&id);
      if (r != sqzSuccess) die(env, "sqzGetUniqueId", r);
    }
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    sqzResult_t r = sqzCommInitRank(&env.comm, env.nranks, id, env.rank);
    if (r != sqzSuccess) die(env, "sqzCommInitRank", r);
  }
  sqzCommUserRank(env.comm, &env.rank);
  sqzCommCount(env.comm, &env.nranks);
  return env;
}

double maxAcrossRanks(const Env& env, double v) {
  sqzResult_t r = sqzAllReduce(&v, &v, 1, sqzFloat64, sqzMax, env.comm, nullptr);
  if (r != sqzSuccess) die(env, "sqzAllReduce(max)", r);
  return v;
}

double sumAcrossRanks(const Env& env, double v) {
  sqzResult_t r = sqzAllReduce(&v, &v, 1, sqzFloat64, sqzSum, env.comm, nullptr);
  if (r != sqzSuccess) die(env, "sqzAllReduce(sum)", r);
  return v;
}

// Average seconds per call of `call`, the slowest rank's.
template <typename F>
double timeCalls(const Env& env, const Options& o, F&& call) {
  for (int i = 0; i < o.warmup; ++i) call();
  sqzBarrier(env.comm);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) call();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / o.iters;
  return maxAcrossRanks(env, secs);
}

}  // namespace

int runPerf(int argc, char** argv, const CollectiveTest& test) {
  Options o = parse(argc, argv);
  Env env = setup(argc, argv, o.deviceBuffers);
  if (!o.compression.empty()) {
    sqzResult_t r = sqzCommSetCompression(env.comm, o.compression.c_str());
    if (r != sqzSuccess) die(env, "sqzCommSetCompression", r);
  }
  const bool mpi = o.mpiBaseline && env.mpi && test.runMpi;
  // A lossy run reports the codec, wire bytes, ratio and error against the
  // fp64 reference instead of #wrong.
  const char* envSpec = std::getenv("SQZ_COMPRESSION");
  const std::string spec = !o.compression.empty() ? o.compression : (envSpec ? envSpec : "none");
  const bool lossy = spec != "none";
  int version = 0;
  sqzGetVersion(&version);
  if (env.rank == 0) {
    const char* transport = std::getenv("SQZ_TRANSPORT");
    std::printf("# sqz %s test: nranks %d, iters %d, warmup %d, check %d, compression %s, launcher %s, sqz %d\n",
                test.name, env.nranks, o.iters, o.warmup, o.check,
                o.compression.empty() ? "(SQZ_COMPRESSION or none)" : o.compression.c_str(),
                env.mpi ? "mpirun" : "environment", version);
    std::printf("# buffers: %s\n", env.device ? (std::string("device (-G 1, stream synchronized per call, SQZ_TRANSPORT=") +
                                                    (transport ? transport : "auto") + ")").c_str()
                                               : "host");
    std::printf("#\n# %10s %12s %8s %6s %6s %38s %38s%s%s\n", "", "", "", "", "", "out-of-place", "in-place",
                lossy ? "                compression (out-of-place)                  " : "",
                mpi ? "          MPI_Allreduce (same run)" : "");
    std::printf("# %10s %12s %8s %6s %6s %9s %8s %8s %8s %9s %8s %8s %8s%s%s\n", "size", "count", "type", "redop", "root",
                "time", "algbw", "busbw", lossy ? "" : "#wrong", "time", "algbw", "busbw", lossy ? "" : "#wrong",
                lossy ? " plan                     wireB/rank   ratio   maxrel  meanrel    enc(ms)   xfer(ms)    dec(ms)" : "",
                mpi ? "      time    busbw  sqz/mpi" : "");
    std::printf("# %10s %12s %8s %6s %6s %9s %8s %8s %8s %9s %8s %8s %8s%s%s\n", "(B)", "(elements)", "", "", "", "(us)",
                "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "",
                lossy ? "                               (B)                                                            " : "",
                mpi ? "      (us)   (GB/s)        " : "");
  }
  double busbwSum = 0;
  int rows = 0;
  size_t wrongTotal = 0;
  for (sqzDataType_t type : o.types) {
    for (sqzRedOp_t op : o.ops) {
      const size_t elem = kTypeSizes[type];
      for (size_t bytes = o.minBytes; bytes <= o.maxBytes;) {
        size_t count = std::max<size_t>(bytes / elem, 1);
        size_t sz = count * elem;
        Buffer send(env, sz), recv(env, sz), inplace(env, sz);
        test.fill(send.host(), count, type, op, env.rank, env.nranks, lossy);
        send.push();
        std::memcpy(inplace.host(), send.host(), sz);
        inplace.push();
        double t[2];
        size_t wrong[2] = {0, 0};
        // Out of place.
        t[0] = timeCalls(env, o, [&] {
          sqzResult_t r = test.run(send.data(), recv.data(), count, type, op, env);
          if (r != sqzSuccess) die(env, test.name, r);
          syncStream(env);
        });
        sqzCallInfo info{};
        double maxRel = 0, meanRel = 0;
        if (o.check) {
          recv.zero();
          if (lossy) {
            // A fresh error-feedback state: the timed calls' residuals must
            // not leak into the error of one call.
            sqzState_t state = nullptr;
            if (sqzResult_t r = sqzStateCreate(env.comm, count, type, &state)) die(env, "sqzStateCreate", r);
            if (sqzResult_t r = sqzAllReduceEx(send.data(), recv.data(), count, type, op, nullptr, state, env.comm,
                                               env.stream))
              die(env, "sqzAllReduceEx", r);
            syncStream(env);
            sqzStateDestroy(state);
          } else if (sqzResult_t r = test.run(send.data(), recv.data(), count, type, op, env)) {
            die(env, test.name, r);
          }
          syncStream(env);
          recv.pull();
          sqzGetCallInfo(env.comm, &info);
          if (lossy) {
            // Norm-relative errors against the exact fp64 result.
            double maxErr = 0, maxRef = 0, errSq = 0, refSq = 0;
            for (size_t i = 0; i < count; ++i) {
              double e = test.expected(i, type, op, env.nranks, true), d = test.load(recv.host(), i, type) - e;
              maxErr = std::max(maxErr, std::fabs(d));
              maxRef = std::max(maxRef, std::fabs(e));
              errSq += d * d;
              refSq += e * e;
            }
            maxRel = maxAcrossRanks(env, maxRef > 0 ? maxErr / maxRef : maxErr);
            meanRel = maxAcrossRanks(env, refSq > 0 ? std::sqrt(errSq / refSq) : std::sqrt(errSq));
          } else {
            wrong[0] = test.checkWrong(recv.host(), count, type, op, env.rank, env.nranks);
          }
        } else {
          sqzGetCallInfo(env.comm, &info);
        }
        // In place: refill before the checked call, since each call overwrites.
        t[1] = timeCalls(env, o, [&] {
          sqzResult_t r = test.run(inplace.data(), inplace.data(), count, type, op, env);
          if (r != sqzSuccess) die(env, test.name, r);
          syncStream(env);
        });
        if (o.check && !lossy) {
          test.fill(inplace.host(), count, type, op, env.rank, env.nranks, false);
          inplace.push();
          if (sqzResult_t r = test.run(inplace.data(), inplace.data(), count, type, op, env)) die(env, test.name, r);
          syncStream(env);
          inplace.pull();
          wrong[1] = test.checkWrong(inplace.host(), count, type, op, env.rank, env.nranks);
        }
        double w0 = sumAcrossRanks(env, static_cast<double>(wrong[0]));
        double w1 = sumAcrossRanks(env, static_cast<double>(wrong[1]));
        double tm = 0;
        if (mpi) {
          // On the host buffers (MPI here is not CUDA-aware).
          for (int i = 0; i < o.warmup; ++i) test.runMpi(send.host(), recv.host(), count, type, op);
          MPI_Barrier(MPI_COMM_WORLD);
          double s = MPI_Wtime();
          for (int i = 0; i < o.iters; ++i) test.runMpi(send.host(), recv.host(), count, type, op);
          tm = (MPI_Wtime() - s) / o.iters;
          MPI_Allreduce(MPI_IN_PLACE, &tm, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        }
        double factor = test.busFactor(env.nranks);
        auto algbw = [&](double secs) { return secs > 0 ? sz / secs / 1e9 : 0.0; };
        if (env.rank == 0) {
          std::string c0 = lossy ? "" : o.check ? std::to_string(static_cast<long long>(w0)) : "N/A";
          std::string c1 = lossy ? "" : o.check ? std::to_string(static_cast<long long>(w1)) : "N/A";
          std::printf("  %10zu %12zu %8s %6s %6d %9.1f %8.3f %8.3f %8s %9.1f %8.3f %8.3f %8s", sz, count,
                      kTypeNames[type], kOpNames[op], -1, t[0] * 1e6, algbw(t[0]), algbw(t[0]) * factor, c0.c_str(),
                      t[1] * 1e6, algbw(t[1]), algbw(t[1]) * factor, c1.c_str());
          if (lossy)
            std::printf(" %-24s %11zu %7.2f %8.2e %8.2e %10.2f %10.2f %10.2f", info.plan, info.wireBytes,
                        info.compressionRatio, maxRel, meanRel, info.encodeSeconds * 1e3, info.transferSeconds * 1e3,
                        info.decodeSeconds * 1e3);
          if (mpi) std::printf(" %9.1f %8.3f %8.2f", tm * 1e6, algbw(tm) * factor, tm / t[0]);
          std::printf("\n");
          std::fflush(stdout);
        }
        busbwSum += algbw(t[1]) * factor;
        ++rows;
        wrongTotal += static_cast<size_t>(w0 + w1);
        if (o.stepFactor > 1) {
          size_t next = static_cast<size_t>(bytes * o.stepFactor);
          bytes = next > bytes ? next : bytes + 1;
        } else {
          bytes += o.stepBytes ? o.stepBytes : (o.maxBytes - o.minBytes + 1);
        }
      }
    }
  }
  if (env.rank == 0) {
    std::printf("# Out of bounds values : %zu %s\n", wrongTotal, wrongTotal ? "FAILED" : "OK");
    std::printf("# Avg bus bandwidth    : %g \n#\n", rows ? busbwSum / rows : 0.0);
  }
  sqzCommDestroy(env.comm);
#ifdef SQZ_PERF_HAVE_CUDA
  if (env.stream) cudaStreamDestroy(reinterpret_cast<cudaStream_t>(env.stream));
#endif
  if (env.mpi) MPI_Finalize();
  return wrongTotal ? 1 : 0;
}

}  // namespace sqz::perf
