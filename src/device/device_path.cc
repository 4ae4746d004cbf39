#include "src/device/device_path.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "collectives/allgather.h"
#include "collectives/broadcast.h"
#include "collectives/call_agreement.h"
#include "common/dtype.h"
#include "common/cuda_check.h"
#include "common/error.h"
#include "common/log.h"
#include "common/trace_range.h"
#include "kernels/cuda_codec.h"
#include "kernels/cuda_device_ops.h"
#include "kernels/wire_format.h"
#include "src/call_settings.h"
#include "src/codec/codec_spec.h"
#include "src/comm.h"
#include "src/device/staging_engine.h"
#include "src/device/staging_runtime.h"
#include "src/tuner/algorithm_table.h"
#include "src/tuner/progress_model.h"
#include "transport/nccl_transport.h"

namespace sqz {
namespace {

cudaStream_t asStream(void* s) { return static_cast<cudaStream_t>(s); }

// What each rank tells the others on the first device call.
struct DeviceRecord {
  char uuid[16];
  int32_t ncclLoads;
  int32_t pad;
};

// Scratch device memory of one call, from the communicator's stream-ordered
// pool: freed on the stream after the call's last kernel, so no call ever
// waits for another's memory and nothing is cudaMalloc'ed per call.
class Scratch {
 public:
  Scratch(cudaMemPool_t pool, cudaStream_t s) : pool_(pool), s_(s) {}
  ~Scratch() {
    for (void* p : ptrs_) cudaFreeAsync(p, s_);
  }
  template <typename T = void>
  T* get(size_t bytes) {
    void* p = nullptr;
    SQZ_CUDA_OK(cudaMallocFromPoolAsync(&p, std::max<size_t>(bytes, 16), pool_, s_));
    ptrs_.push_back(p);
    return static_cast<T*>(p);
  }

 private:
  cudaMemPool_t pool_;
  cudaStream_t s_;
  std::vector<void*> ptrs_;
};

// Loads every sqz kernel into `device`'s context once per process, before
// the first DevicePath on it goes on (see cudaLoadAllKernels): every wait
// kernel of the process belongs to a DevicePath made after this returned,
// so no kernel is ever loaded while one of ours spins.
void loadKernelsOnce(int device) {
  static std::mutex mutex;
  static std::set<int> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded.count(device)) return;
  cudaLoadAllKernels();
  loaded.insert(device);
}

}  // namespace

// Error feedback and tuning state of one device buffer.
struct DeviceBufferState {
  size_t count = 0;
  sqzDataType_t type = sqzFloat32;
  float* residual = nullptr;  // device, count floats (from the pool, once)
  cudaEvent_t lastUse = nullptr;  // after the last (uncaptured) call on this buffer
  bool dirty = false;         // residual may hold mass not yet sent
  bool implicit = false;      // a call that names no state: no residual (src/implicit_states.h)
  uint64_t lastCall = 0;      // implicit states: the call that last used it (least recently used go first)
  uint64_t step = 0;
  TuningState tuning;
  // Lagged statistics of the previous call: NCCL path, N GradStats copied
  // into pinned `statsHost` before `statsEvent`; staging path, summed by the
  // progress thread into `jobStats` before `lastJob` finished its host work.
  // (Staging path: statsHost is `statsBlock`, from the engine's pool, and
  // holds only the sync-mode first call's own statistics.)
  GradStats* statsHost = nullptr;
  StagingEngine::Block statsBlock;
  cudaEvent_t statsEvent = nullptr;
  bool statsPending = false;
  StagingEngine::JobPtr lastJob;
  std::shared_ptr<GradStats> jobStats;
};

struct DevicePath::Impl {
  Communicator& comm;
  int device = 0;
  bool ready = false;  // transport chosen
  std::unique_ptr<NcclTransport> nccl;
  std::unique_ptr<StagingEngine> staging;
  cudaMemPool_t pool = nullptr;
  cudaStream_t releaseStream = nullptr;  // frees residuals after their last use, without a sync
  int maxPitch = 0;                      // cudaMemcpy2D's limit on a pitch (bytes)
  int* decodeError = nullptr;  // mapped pinned word the decode kernels set on a malformed payload
  int* decodeErrorDevice = nullptr;
  std::map<std::pair<const void*, size_t>, std::unique_ptr<DeviceBufferState>> states;
  std::map<cudaStream_t, cudaEvent_t> lastOnStream;  // to wait for our kernels before freeing memory
  std::set<std::string> notedDense;                   // gather calls sent exactly, logged once each

  explicit Impl(Communicator& c) : comm(c) {
    SQZ_CUDA_OK(cudaGetDevice(&device));
    loadKernelsOnce(device);
    SQZ_CUDA_OK(cudaDeviceGetAttribute(&maxPitch, cudaDevAttrMaxPitch, device));
    SQZ_CUDA_OK(cudaStreamCreateWithFlags(&releaseStream, cudaStreamNonBlocking));
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    SQZ_CUDA_OK(cudaMemPoolCreate(&pool, &props));
    uint64_t keep = UINT64_MAX;  // keep freed memory for the next call
    SQZ_CUDA_OK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    SQZ_CUDA_OK(cudaHostAlloc(reinterpret_cast<void**>(&decodeError), sizeof(int), cudaHostAllocMapped));
    *decodeError = 0;
    void* dev = nullptr;
    SQZ_CUDA_OK(cudaHostGetDevicePointer(&dev, decodeError, 0));
    decodeErrorDevice = static_cast<int*>(dev);
  }

  // Teardown is the one place that waits for the GPU (the communicator's
  // own work) and frees pinned memory (which synchronizes).
  ~Impl() {
    cudaSetDevice(device);
    for (auto& [key, st] : states) release(*st);  // before the engine: statistics blocks go back to it
    staging.reset();  // finishes the host side, then waits for the GPU to leave pinned memory
    for (auto& [s, e] : lastOnStream) {
      cudaEventSynchronize(e);
      cudaEventDestroy(e);
    }
    if (releaseStream) cudaStreamDestroy(releaseStream);  // its frees still run
    // Pool memory still in use by enqueued work is released when that is done.
    if (pool) cudaMemPoolDestroy(pool);
    if (decodeError) cudaFreeHost(decodeError);
    nccl.reset();
    cudaGetLastError();
  }

  int nranks() const { return comm.size_; }
  int rank() const { return comm.rank_; }

  void checkAsync() {
    std::string why;
    sqzResult_t r = asyncError(&why);
    if (r != sqzSuccess) fail(r, "an earlier device allreduce failed: %s", why.c_str());
  }

  sqzResult_t asyncError(std::string* why) {
    if (staging) {
      if (std::exception_ptr e = staging->error()) {
        try {
          std::rethrow_exception(e);
        } catch (const Error& err) {
          *why = err.what();
          return err.code();
        } catch (const std::exception& err) {
          *why = err.what();
          return sqzInternalError;
        }
      }
    }
    if (nccl) {
      try {
        nccl->checkAsyncError();
      } catch (const Error& err) {
        *why = err.what();
        return err.code();
      }
    }
    if (decodeError && *reinterpret_cast<volatile int*>(decodeError) != 0) {
      *why = cudaDecodeErrorString(*decodeError);
      return sqzRemoteError;
    }
    return sqzSuccess;
  }

  // First device call (collective): NCCL when every rank has its own GPU and
  // NCCL loads (or SQZ_TRANSPORT=nccl), else host staging.
  void ensureTransport() {
    if (ready) return;
    const std::string want = envString("SQZ_TRANSPORT", "auto");
    SQZ_REQUIRE(want == "auto" || want == "nccl" || want == "ucx", sqzInvalidArgument,
                "SQZ_TRANSPORT='%s' (auto, nccl or ucx)", want.c_str());
    if (nccl) {  // adopted
      ready = true;
      return;
    }
    cudaDeviceProp prop{};
    SQZ_CUDA_OK(cudaGetDeviceProperties(&prop, device));
    DeviceRecord mine{};
    std::memcpy(mine.uuid, prop.uuid.bytes, sizeof mine.uuid);
    mine.ncclLoads = ncclApi() != nullptr;
    std::vector<DeviceRecord> all(nranks());
    const Deadline deadline = Deadline::fromTimeout();
    AllGather(*comm.transport_).run(&mine, all.data(), sizeof mine, comm.nextSeq(), deadline);
    bool distinct = true, loads = true;
    for (int a = 0; a < nranks(); ++a) {
      loads = loads && all[a].ncclLoads;
      for (int b = a + 1; b < nranks(); ++b)
        if (comm.nodeIds_[a] == comm.nodeIds_[b] && !std::memcmp(all[a].uuid, all[b].uuid, 16)) distinct = false;
    }
    bool useNccl = want == "nccl" || (want == "auto" && distinct && loads);
    if (want == "nccl") {
      const char* why = "";
      SQZ_REQUIRE(loads, sqzInvalidUsage, "SQZ_TRANSPORT=nccl but NCCL does not load on every rank%s%s",
                  ncclApi(&why) ? "" : ": ", ncclApi() ? "" : why);
      SQZ_REQUIRE(distinct, sqzInvalidUsage,
                  "SQZ_TRANSPORT=nccl needs one GPU per rank (NCCL refuses two ranks on one GPU); use ucx");
    }
    if (useNccl) {
      NcclUniqueId id{};
      if (rank() == 0) id = NcclTransport::newUniqueId();
      Broadcast(*comm.transport_).run(&id, &id, sizeof id, 0, comm.nextSeq(), deadline);
      nccl = std::make_unique<NcclTransport>(NcclTransport::createComm(id, nranks(), rank()), true);
    } else {
      staging = std::make_unique<StagingEngine>(device, cudaStagingRuntime());
    }
    SQZ_INFO("device buffers on GPU %d use %s", device, useNccl ? "NCCL" : "host staging over UCX");
    ready = true;
  }

  // The state of a call: the caller's sqzState (key), or for an implicit
  // call (key null) the one of its (count, type), which holds no residual
  // and of which at most ImplicitStates::kCapacity are kept, as on host.
  DeviceBufferState& state(const void* key, size_t count, sqzDataType_t type, cudaStream_t s, bool capturing,
                           uint64_t call) {
    static const char kImplicitKeys[sqzNumTypes] = {};
    const bool implicit = key == nullptr;
    if (implicit) key = &kImplicitKeys[type];
    auto& slot = states[{key, count}];
    if (slot && slot->type == type) {
      if (implicit) slot->step = slot->lastCall = call;
      return *slot;
    }
    SQZ_REQUIRE(!capturing, sqzInvalidUsage,
                "the first compressed call on a device buffer cannot be captured in a CUDA graph "
                "(it allocates the buffer's state); run one call before capturing");
    auto st = std::make_unique<DeviceBufferState>();
    st->count = count;
    st->type = type;
    st->implicit = implicit;
    if (!implicit) {
      SQZ_CUDA_OK(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&st->residual),
                                          std::max<size_t>(count, 1) * sizeof(float), pool, s));
      SQZ_CUDA_OK(cudaMemsetAsync(st->residual, 0, count * sizeof(float), s));
    }
    const size_t statsBytes = sizeof(GradStats) * nranks();
    if (staging) {
      st->statsBlock = staging->acquire(statsBytes);
      st->statsHost = static_cast<GradStats*>(st->statsBlock.host);
    } else {
      SQZ_CUDA_OK(cudaHostAlloc(reinterpret_cast<void**>(&st->statsHost), statsBytes, cudaHostAllocDefault));
    }
    SQZ_CUDA_OK(cudaEventCreateWithFlags(&st->statsEvent, cudaEventDisableTiming));
    SQZ_CUDA_OK(cudaEventCreateWithFlags(&st->lastUse, cudaEventDisableTiming));
    if (implicit) st->step = st->lastCall = call;
    if (slot) release(*slot);  // same key, new type
    slot = std::move(st);
    DeviceBufferState& made = *slot;
    if (implicit) evictImplicitBeyondCapacity();
    return made;
  }

  void evictImplicitBeyondCapacity() {
    size_t implicitCount = 0;
    for (auto& [k, st] : states) implicitCount += st->implicit;
    while (implicitCount-- > ImplicitStates::kCapacity) {
      auto oldest = states.end();
      for (auto it = states.begin(); it != states.end(); ++it)
        if (it->second->implicit && (oldest == states.end() || it->second->lastCall < oldest->second->lastCall))
          oldest = it;
      release(*oldest->second);
      states.erase(oldest);
    }
  }

  // Frees a buffer state once the GPU is done with it: the residual after
  // the last call that used it, stream-ordered on releaseStream (the call's
  // own stream may be gone). With host staging nothing here waits for the
  // GPU, since another rank thread's wait kernel may be spinning (a
  // cudaFree or cudaFreeHost would wait for it); the NCCL path, which has no
  // wait kernels, frees its pinned statistics after their copy landed.
  void release(DeviceBufferState& st) {
    if (st.lastJob) {
      try {
        staging->waitHost(st.lastJob, Deadline::fromTimeout());  // the host side only
      } catch (const Error&) {
        // its error is the communicator's asynchronous error already
      }
    }
    if (staging) {
      staging->giveBack(st.statsBlock);  // the sync-mode copy into it was waited for where it was read
    } else {
      cudaEventSynchronize(st.statsEvent);
      cudaFreeHost(st.statsHost);
    }
    cudaEventDestroy(st.statsEvent);
    cudaStreamWaitEvent(releaseStream, st.lastUse, 0);
    if (st.residual) cudaFreeAsync(st.residual, releaseStream);
    cudaEventDestroy(st.lastUse);
    cudaGetLastError();
  }

  void forget(const void* key) {
    for (auto it = states.begin(); it != states.end();) {
      if (it->first.first == key) {
        release(*it->second);
        it = states.erase(it);
      } else {
        ++it;
      }
    }
  }

  // The previous call's statistics, summed over ranks in rank order (the
  // same doubles on every rank). Blocks only while that call is unfinished.
  void collectLaggedStats(DeviceBufferState& st) {
    if (st.lastJob) {
      staging->waitHost(st.lastJob, Deadline::fromTimeout());
      st.tuning.reduced = *st.jobStats;
      ++st.tuning.exchanges;
      st.lastJob.reset();
      return;
    }
    if (!st.statsPending) return;
    SQZ_CUDA_OK(cudaEventSynchronize(st.statsEvent));
    clearStats(&st.tuning.reduced);
    for (int r = 0; r < nranks(); ++r) addStats(&st.tuning.reduced, st.statsHost[r]);
    ++st.tuning.exchanges;
    st.statsPending = false;
  }

  PlanSpec choose(DeviceBufferState& st, const void* send, size_t count, sqzDataType_t type, cudaStream_t s,
                  bool capturing, double* gain) {
    AutoTuner& tuner = *comm.tuner_;
    if (!tuner.ready()) {
      SQZ_REQUIRE(!capturing, sqzInvalidUsage, "SQZ_COMPRESSION=auto: run one call before CUDA graph capture");
      drain();
      tuner.prepare(*comm.transport_, [this](void* buf, size_t n) {
        Broadcast(*comm.transport_).run(buf, buf, n, 0, comm.nextSeq(), Deadline::fromTimeout());
      });
    }
    PlanSpec forced;
    if (tuner.forcedPlan(count * dataTypeSize(type), &forced)) {
      *gain = -1;
      return forced;
    }
    if (capturing) {  // frozen: the buffer's current choice, no read-back
      SQZ_REQUIRE(st.tuning.haveReduced, sqzInvalidUsage,
                  "SQZ_COMPRESSION=auto: run one call on this buffer before CUDA graph capture");
      Plan plan = tuner.choose(st.tuning, st.tuning.reduced, static_cast<double>(count),
                               static_cast<int>(dataTypeSize(type)), "device buffer (captured)", !st.implicit);
      *gain = plan.chosen.gain;
      return plan.chosen.candidate.spec;
    }
    if (!st.tuning.haveReduced) {
      // Sync mode on a buffer's first call: this call's own statistics.
      Scratch scratch(pool, s);
      GradStats* devStats = statsOfG(send, type, count, st.tuning.sketchSeed(), scratch, s);
      SQZ_CUDA_OK(cudaMemcpyAsync(st.statsHost, devStats, sizeof(GradStats), cudaMemcpyDeviceToHost, s));
      SQZ_CUDA_OK(cudaEventRecord(st.statsEvent, s));
      SQZ_CUDA_OK(cudaEventSynchronize(st.statsEvent));
      st.tuning.reduced = st.statsHost[0];
      drain();
      st.tuning.statsWireBytes = comm.reduceStats(&st.tuning.reduced);
      ++st.tuning.exchanges;
      st.tuning.haveReduced = true;
    } else {
      collectLaggedStats(st);
    }
    char label[64];
    std::snprintf(label, sizeof label, "device buffer of %zu x %s", count, dataTypeName(type));
    Plan plan = tuner.choose(st.tuning, st.tuning.reduced, static_cast<double>(count),
                             static_cast<int>(dataTypeSize(type)), label, !st.implicit);
    *gain = plan.chosen.gain;
    return plan.chosen.candidate.spec;
  }

  // The device form of a plan: its codec on the device algorithms.
  static std::string deviceAlgorithm(const PlanSpec& plan, bool forced) {
    const AlgorithmEntry& chosen = defaultDeviceAlgorithm(plan.codec);
    if (plan.codec.kind == CodecKind::None) return chosen.name;
    const AlgorithmEntry* named = findAlgorithm(plan.algorithm);
    if (forced && named && !named->onDevice)
      fail(sqzInvalidUsage, "plan '@%s' runs on host buffers only; device buffers run gather, randk or ring",
           planName(plan).c_str());
    return chosen.name;
  }

  // rows x width bytes from src (rows `srcPitch` apart) to dst (`dstPitch`
  // apart): one cudaMemcpy2DAsync, or a copy per row where a pitch exceeds
  // what it takes (cudaDevAttrMaxPitch, 2^31-1 bytes: payloads above 2 GiB).
  void copyStrided(void* dst, size_t dstPitch, const void* src, size_t srcPitch, size_t width, size_t rows,
                   cudaMemcpyKind kind, cudaStream_t s) {
    const size_t limit = static_cast<size_t>(std::max(maxPitch, 0));
    if (dstPitch <= limit && srcPitch <= limit) {
      SQZ_CUDA_OK(cudaMemcpy2DAsync(dst, dstPitch, src, srcPitch, width, rows, kind, s));
      return;
    }
    for (size_t r = 0; r < rows; ++r)
      SQZ_CUDA_OK(cudaMemcpyAsync(static_cast<unsigned char*>(dst) + r * dstPitch,
                                  static_cast<const unsigned char*>(src) + r * srcPitch, width, kind, s));
  }

  void noteStream(cudaStream_t s) {
    auto& e = lastOnStream[s];
    if (!e) SQZ_CUDA_OK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    SQZ_CUDA_OK(cudaEventRecord(e, s));
  }

  // The header every rank's staged job agrees on before moving data: the
  // call and the plan each rank derived (a diverged plan fails everywhere).
  // rng: the codecs' (seed, step) key of a lossy plan (src/call_settings.h), 0 for an exact one.
  CallHeader header(size_t count, sqzDataType_t type, sqzRedOp_t op, const std::string& planText,
                    uint64_t rng = 0) const {
    CallHeader h;
    h.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
    h.count = count;
    h.dtype = type;
    h.op = op;
    h.spec = textHash(planText);
    h.settings = comm.settingsHash_;
    h.rng = rng;
    return h;
  }

  // Sum of the N GradStats found at base + r * stride (host memory).
  static void sumStats(const unsigned char* base, size_t stride, int n, GradStats* out) {
    clearStats(out);
    for (int r = 0; r < n; ++r) {
      GradStats g;
      std::memcpy(&g, base + r * stride, sizeof g);
      addStats(out, g);
    }
  }

  // Lagged statistics of a payload-free plan (exact, randk) under auto.
  void gatherStatsNccl(DeviceBufferState& st, const GradStats* devStats, Scratch& scratch, cudaStream_t s) {
    GradStats* all = scratch.get<GradStats>(sizeof(GradStats) * nranks());
    nccl->allGather(devStats, all, sizeof(GradStats), s);
    SQZ_CUDA_OK(cudaMemcpyAsync(st.statsHost, all, sizeof(GradStats) * nranks(), cudaMemcpyDeviceToHost, s));
    SQZ_CUDA_OK(cudaEventRecord(st.statsEvent, s));
    st.statsPending = true;
  }

  // This call's statistics of g (not g + e, as the host path: DESIGN.md
  // section 1), in scratch device memory.
  // With the sketch of g (GradStats::sketch) over the whole buffer, under
  // the buffer's sketch seed (the same on every rank).
  GradStats* statsOfG(const void* send, sqzDataType_t type, size_t count, uint64_t sketchSeed, Scratch& scratch,
                      cudaStream_t s) {
    GradStats* devStats = scratch.get<GradStats>(sizeof(GradStats));
    SQZ_CUDA_OK(cudaMemsetAsync(devStats, 0, sizeof(GradStats), s));
    cudaGradStats(send, type, nullptr, count, devStats, s);
    cudaStatsSketch(send, type, count, sketchSeed, devStats, s);
    return devStats;
  }

  // The encoder's view of a whole device buffer with its residual and key.
  EncodeArgs encodeArgs(const void* send, sqzDataType_t type, size_t count, DeviceBufferState& st) const {
    EncodeArgs a;
    a.input = send;
    a.dtype = type;
    a.count = count;
    a.residual = st.residual;
    a.seed = comm.seed_;
    a.step = st.step;
    a.rank = static_cast<uint32_t>(rank());
    a.chunkOffset = 0;
    return a;
  }

  // An exact allreduce of device memory, stream-ordered: NCCL's, or the
  // host ring over a staged copy (after the ranks agree on the call `h`).
  // With devStats (auto), this call's statistics are gathered for the next
  // call on st's buffer (lagged).
  void exactAllreduce(const void* src, void* dst, size_t count, sqzDataType_t type, sqzRedOp_t op,
                      const GradStats* devStats, DeviceBufferState* st, const CallHeader& h, Scratch& scratch,
                      cudaStream_t s) {
    const size_t bytes = count * dataTypeSize(type);
    if (nccl) {
      nccl->allReduce(src, dst, count, type, op, s);
      if (devStats) gatherStatsNccl(*st, devStats, scratch, s);
      return;
    }
    const int n = nranks();
    StagingEngine::Block data = staging->acquire(bytes);
    StagingEngine::Block stats = staging->acquire(sizeof(GradStats) * (n + 1));
    SQZ_CUDA_OK(cudaMemcpyAsync(data.host, src, bytes, cudaMemcpyDeviceToHost, s));
    if (devStats) SQZ_CUDA_OK(cudaMemcpyAsync(stats.host, devStats, sizeof(GradStats), cudaMemcpyDeviceToHost, s));
    const uint32_t seq = comm.nextSeq();
    const uint32_t statsSeq = devStats ? comm.nextSeq() : 0;
    auto sum = devStats ? std::make_shared<GradStats>() : nullptr;
    Communicator* c = &comm;
    auto job = staging->submit(
        s,
        [=] {
          const Deadline deadline = Deadline::fromTimeout();
          agreeOnCall(*c->transport_, seq, h, deadline, c->shm_.get());
          AllreduceArgs a;
          a.send = a.recv = data.host;
          a.count = count;
          a.type = type;
          a.op = op;
          a.seq = seq;
          a.deadline = deadline;
          CallCounters counters;
          c->runExact(a, c->chooseAlgorithm(CodecParams{}, count, type), nullptr, &counters);
          if (sum) {
            auto* all = static_cast<unsigned char*>(stats.host) + sizeof(GradStats);
            AllGather(*c->transport_).run(stats.host, all, sizeof(GradStats), statsSeq, deadline);
            sumStats(all, sizeof(GradStats), n, sum.get());
          }
        },
        {data, stats});
    SQZ_CUDA_OK(cudaMemcpyAsync(dst, data.host, bytes, cudaMemcpyHostToDevice, s));
    staging->retire(job, s);
    if (devStats) {
      st->lastJob = job;
      st->jobStats = sum;
    }
  }

  void runExact(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                DeviceBufferState* st, bool tuned, cudaStream_t s, const std::string& planText, sqzCallInfo* info) {
    Scratch scratch(pool, s);
    // Mass the residual still owes goes out with this exact call.
    const bool flush = st && st->dirty;
    const void* src = send;
    void* dst = recv;
    sqzDataType_t wireType = type;
    float* acc = nullptr;
    GradStats* devStats = tuned ? statsOfG(send, type, count, st ? st->tuning.sketchSeed() : 0, scratch, s) : nullptr;
    if (flush) {
      acc = scratch.get<float>(count * sizeof(float));
      cudaLoadFloats(send, type, st->residual, count, acc, s);
      SQZ_CUDA_OK(cudaMemsetAsync(st->residual, 0, count * sizeof(float), s));
      st->dirty = false;
      src = dst = acc;
      wireType = sqzFloat32;
    }
    const size_t wireBytes = count * dataTypeSize(wireType);
    exactAllreduce(src, dst, count, wireType, op, devStats, st, header(count, type, op, planText), scratch, s);
    if (flush) cudaStoreFloats(acc, count, 1, type, recv, s);
    info->wireBytes = static_cast<size_t>(RingAllreduce::bytesSentPerRank(static_cast<double>(wireBytes), nranks()));
  }

  void runGather(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                 DeviceBufferState& st, const CodecParams& codec, bool tuned, cudaStream_t s,
                 const std::string& planText, sqzCallInfo* info) {
    SQZ_REQUIRE(count <= kMaxChunkElements, sqzInvalidUsage,
                "device buffers of more than 2^32-1 elements are not compressed in this build (%zu)", count);
    Scratch scratch(pool, s);
    const int n = nranks();
    const size_t P = encodedBytes(codec, count, true);
    unsigned char* payload = scratch.get<unsigned char>(P);
    unsigned char* gathered = scratch.get<unsigned char>(P * n);
    float* acc = scratch.get<float>(count * sizeof(float));
    // One workspace for this rank's encode, then the N decodes after it.
    const size_t wsBytes = std::max(cudaEncodeWorkspaceBytes(codec, count), cudaDecodeWorkspaceBytes(codec, count));
    void* ws = wsBytes ? scratch.get(wsBytes) : nullptr;
    GradStats* devStats = statsOfG(send, type, count, st.tuning.sketchSeed(), scratch, s);
    // Under Adam only codecs whose error is biased keep a residual
    // (src/tuner/README.md section 7); what an earlier call left owed goes
    // out with this one, as with an exact call.
    const bool carry = !st.implicit && carriesErrorFeedback(codec, comm.tuner_->optimizer());
    const void* input = send;
    sqzDataType_t inputType = type;
    if (!carry && st.dirty) {
      float* owed = scratch.get<float>(count * sizeof(float));
      cudaLoadFloats(send, type, st.residual, count, owed, s);
      SQZ_CUDA_OK(cudaMemsetAsync(st.residual, 0, count * sizeof(float), s));
      st.dirty = false;
      input = owed;
      inputType = sqzFloat32;
    }
    {
      TraceRange r("sqz encode");
      EncodeArgs a = encodeArgs(input, inputType, count, st);
      if (!carry) a.residual = nullptr;
      a.stats = devStats;
      cudaEncode(codec, a, payload, ws, s);
    }
    const uint64_t step = st.step++;
    st.dirty = carry;
    {
      TraceRange r("sqz transfer");
      if (nccl) {
        nccl->allGather(payload, gathered, P, s);
      } else {
        StagingEngine::Block out = staging->acquire(P);
        StagingEngine::Block in = staging->acquire(P * n);
        SQZ_CUDA_OK(cudaMemcpyAsync(out.host, payload, P, cudaMemcpyDeviceToHost, s));
        const uint32_t seq = comm.nextSeq();
        const CallHeader h = header(count, type, op, planText, rngKey(comm.seed_, step));
        auto sum = tuned ? std::make_shared<GradStats>() : nullptr;
        Communicator* c = &comm;
        auto job = staging->submit(
            s,
            [=] {
              const Deadline deadline = Deadline::fromTimeout();
              agreeOnCall(*c->transport_, seq, h, deadline, c->shm_.get());
              AllGather(*c->transport_).run(out.host, in.host, P, seq, deadline);
              if (sum) sumStats(static_cast<unsigned char*>(in.host) + sizeof(WireHeader), P, n, sum.get());
            },
            {out, in});
        SQZ_CUDA_OK(cudaMemcpyAsync(gathered, in.host, P * n, cudaMemcpyHostToDevice, s));
        staging->retire(job, s);
        if (tuned) {
          st.lastJob = job;
          st.jobStats = sum;
        }
      }
    }
    {
      TraceRange r("sqz decode");
      DecodeExpect x;
      x.params = codec;
      x.count = count;
      x.chunkOffset = 0;
      x.withStats = true;
      x.seed = comm.seed_;
      x.step = step;
      for (int r2 = 0; r2 < n; ++r2)
        cudaDecode(x, gathered + r2 * P, P, acc, r2 == 0 ? DecodeMode::Overwrite : DecodeMode::Accumulate,
                   decodeErrorDevice, ws, s);
      cudaStoreFloats(acc, count, op == sqzAvg ? n : 1, type, recv, s);
      cudaNonFiniteGuard(gathered + sizeof(WireHeader) + offsetof(GradStats, nonFinite), P, n, false, recv, type,
                         count, st.residual, s);
    }
    if (nccl && tuned) {
      copyStrided(st.statsHost, sizeof(GradStats), gathered + sizeof(WireHeader), P, sizeof(GradStats), n,
                  cudaMemcpyDeviceToHost, s);
      SQZ_CUDA_OK(cudaEventRecord(st.statsEvent, s));
      st.statsPending = true;
    }
    info->wireBytes = P * static_cast<size_t>(n - 1);
  }

  void runRandk(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                DeviceBufferState& st, const CodecParams& codec, bool tuned, cudaStream_t s,
                const std::string& planText, sqzCallInfo* info) {
    Scratch scratch(pool, s);
    const int n = nranks();
    const size_t k = selectedCount(codec, count);
    // The K values and, after them, this rank's non-finite flag: one exact sum.
    float* values = scratch.get<float>((k + 1) * sizeof(float));
    float* acc = scratch.get<float>(count * sizeof(float));
    GradStats* devStats = statsOfG(send, type, count, st.tuning.sketchSeed(), scratch, s);
    cudaRandkGather(codec, encodeArgs(send, type, count, st), values, s);
    cudaNonFiniteFlag(devStats, values + k, s);
    const uint64_t step = st.step++;
    st.dirty = !st.implicit;
    exactAllreduce(values, values, k + 1, sqzFloat32, sqzSum, tuned ? devStats : nullptr, &st,
                   header(count, type, op, planText, rngKey(comm.seed_, step)), scratch, s);
    cudaRandkScatter(codec, count, comm.seed_, step, 0, values, acc, DecodeMode::Overwrite, s);
    cudaStoreFloats(acc, count, op == sqzAvg ? n : 1, type, recv, s);
    cudaNonFiniteGuard(values + k, 0, 1, true, recv, type, count, st.residual, s);
    info->wireBytes = static_cast<size_t>(RingAllreduce::bytesSentPerRank((k + 1) * 4.0, n));
  }

  void drain() {
    if (staging) staging->drain(Deadline::fromTimeout());
  }
};

DevicePath::DevicePath(Communicator& comm) : impl_(std::make_unique<Impl>(comm)) {}
DevicePath::~DevicePath() = default;

void DevicePath::adoptNccl(void* ncclComm) {
  auto t = std::make_unique<NcclTransport>(static_cast<NcclComm>(ncclComm), false);
  SQZ_CHECK(t->size() == impl_->nranks() && t->rank() == impl_->rank(), "NCCL rank %d of %d, sqz rank %d of %d",
            t->rank(), t->size(), impl_->rank(), impl_->nranks());
  SQZ_REQUIRE(t->device() == impl_->device, sqzInvalidUsage,
              "the NCCL communicator is on GPU %d but the current device is %d", t->device(), impl_->device);
  impl_->nccl = std::move(t);
}

void DevicePath::drain() { impl_->drain(); }
void DevicePath::forgetState(const void* key) { impl_->forget(key); }

void ncclRankAndSize(void* ncclComm, int* rank, int* size) {
  NcclTransport t(static_cast<NcclComm>(ncclComm), false);
  int current = -1;
  SQZ_CUDA_OK(cudaGetDevice(&current));
  SQZ_REQUIRE(t.device() == current, sqzInvalidUsage,
              "the NCCL communicator is on GPU %d; make it the current device (it is %d)", t.device(), current);
  *rank = t.rank();
  *size = t.size();
}

void ncclBroadcastHostBytes(void* ncclComm, void* bytes, size_t n) {
  NcclTransport t(static_cast<NcclComm>(ncclComm), false);
  cudaStream_t s = nullptr;
  SQZ_CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void* dev = nullptr;
  cudaError_t e = cudaMalloc(&dev, n);
  if (e == cudaSuccess) e = cudaMemcpyAsync(dev, bytes, n, cudaMemcpyHostToDevice, s);
  if (e == cudaSuccess) {
    try {
      t.broadcast(dev, dev, n, 0, s);
    } catch (...) {
      cudaFree(dev);
      cudaStreamDestroy(s);
      throw;
    }
    e = cudaMemcpyAsync(bytes, dev, n, cudaMemcpyDeviceToHost, s);
  }
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  cudaFree(dev);
  cudaStreamDestroy(s);
  SQZ_REQUIRE(e == cudaSuccess, sqzUnhandledCudaError, "broadcasting the sqz id over NCCL: %s", cudaGetErrorString(e));
}
sqzResult_t DevicePath::asyncError(std::string* why) { return impl_->asyncError(why); }

void DevicePath::abort() {
  if (impl_->staging) impl_->staging->abort();
  if (impl_->nccl) impl_->nccl->abort();
}

void DevicePath::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                           void* streamPtr, const CompressionPolicy& policy, const void* stateKey, uint64_t call) {
  Impl& d = *impl_;
  d.checkAsync();
  int current = -1;
  SQZ_CUDA_OK(cudaGetDevice(&current));
  SQZ_REQUIRE(current == d.device, sqzInvalidUsage,
              "device buffers of this communicator live on GPU %d, but the current device is %d", d.device, current);
  d.ensureTransport();
  cudaStream_t s = asStream(streamPtr);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  SQZ_CUDA_OK(cudaStreamIsCapturing(s, &capture));
  const bool capturing = capture != cudaStreamCaptureStatusNone;
  SQZ_REQUIRE(!capturing || d.nccl, sqzInvalidUsage,
              "host staging (SQZ_TRANSPORT=ucx) cannot be captured in a CUDA graph; use SQZ_TRANSPORT=nccl");
  Communicator& comm = d.comm;

  const size_t bytes = count * dataTypeSize(type);
  const bool lossyType = type == sqzFloat32 || type == sqzFloat16 || type == sqzBfloat16;
  const bool compressible = lossyType && (op == sqzSum || op == sqzAvg) && d.nranks() > 1 && count > 0;
  SQZ_REQUIRE(!policy.plan.hierarchical, sqzInvalidUsage,
              "hierarchical plans run on host buffers only in this build ('%s')", policy.text.c_str());
  const bool fixedLossy =
      !policy.automatic && policy.plan.codec.kind != CodecKind::None && bytes >= comm.config_.minBytes;
  const bool tuned = policy.automatic && compressible;
  DeviceBufferState* st = nullptr;
  if (compressible && (fixedLossy || tuned || stateKey))
    st = &d.state(stateKey, count, type, s, capturing, call);
  // Whatever this call enqueues on the buffer's residual, also when it
  // fails halfway, comes before the buffer's lastUse (its memory is freed
  // after that).
  struct MarkLastUse {
    cudaEvent_t event;
    cudaStream_t stream;
    ~MarkLastUse() {
      if (event) cudaEventRecord(event, stream);
    }
  } markLastUse{st && !capturing ? st->lastUse : nullptr, s};

  sqzCallInfo info{};
  info.count = count;
  info.bytes = bytes;
  info.gain = 1.0;
  PlanSpec plan;
  bool forced = false;
  if (compressible && fixedLossy) {
    plan = policy.plan;
    forced = true;
  } else if (tuned) {
    plan = d.choose(*st, send, count, type, s, capturing, &info.gain);
    if (plan.hierarchical) plan = PlanSpec{};  // device buffers: no hierarchy; exact
  }
  std::string algorithm = count == 0 ? "none" : d.deviceAlgorithm(plan, forced);
  if (algorithm == "gather") {
    // Every rank receives N-1 payloads: past 2/N of the dense size that is
    // more than the exact ring moves (bf16 at 4+ ranks, q8 at 8+), so the
    // call goes exact instead, as the sparse allgather switches to dense.
    const double gatherWire = static_cast<double>(encodedBytes(plan.codec, count, true)) * (d.nranks() - 1);
    if (gatherWire >= RingAllreduce::bytesSentPerRank(static_cast<double>(bytes), d.nranks())) {
      if (d.notedDense.insert(codecName(plan.codec) + "/" + std::to_string(count)).second)
        SQZ_INFO("device allreduce of %zu x %s: %s over gather would send more than the exact ring at %d ranks; "
                 "sending exactly",
                 count, dataTypeName(type), codecName(plan.codec).c_str(), d.nranks());
      algorithm = "ring";
      plan = PlanSpec{};
    }
  }
  PlanSpec ran = plan;
  ran.algorithm = algorithm;
  const std::string planText = algorithm == "ring" || algorithm == "none" ? algorithm : planName(ran);
  // Under capture the plan is frozen: no statistics are read back.
  const bool readBack = tuned && !capturing;
  if (count > 0) {
    LogRankScope logRank(d.rank());
    TraceRange range("sqz allreduce (device)");
    SQZ_TRACE("device allreduce count=%zu %s %s: @%s", count, dataTypeName(type), redOpName(op), planText.c_str());
    if (algorithm == "ring")
      d.runExact(send, recv, count, type, op, st, readBack, s, planText, &info);
    else if (algorithm == "randk")
      d.runRandk(send, recv, count, type, op, *st, plan.codec, readBack, s, planText, &info);
    else
      d.runGather(send, recv, count, type, op, *st, plan.codec, readBack, s, planText, &info);
    if (!capturing) d.noteStream(s);
  }
  std::snprintf(info.algorithm, sizeof info.algorithm, "%s", algorithm.c_str());
  std::snprintf(info.codec, sizeof info.codec, "%s", algorithm == "ring" || count == 0 ? "none" : codecName(plan.codec).c_str());
  std::snprintf(info.plan, sizeof info.plan, "@%s", planText.c_str());
  info.exact = algorithm == "ring" || count == 0;
  const double dense = RingAllreduce::bytesSentPerRank(static_cast<double>(bytes), d.nranks());
  info.compressionRatio = info.wireBytes > 0 ? dense / static_cast<double>(info.wireBytes) : 1.0;
  comm.lastCall_ = info;  // seconds stay 0: measuring them would need a synchronization
  comm.lastIsHost_ = false;
}

}  // namespace sqz
