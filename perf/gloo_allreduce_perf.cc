// gloo_allreduce_perf: the peer baseline of sqz_allreduce_perf. The same
// driver, flags, data, check and table, but each timed call is Gloo's ring
// allreduce (gloo::allreduce, AllreduceOptions::RING) over Gloo's TCP
// transport, so the two binaries' rows compare like for like on the same
// links (perf/results/gloo_testbed.md).
//
// Launch as sqz_allreduce_perf (mpirun, or perf/netbench/testbed.sh run).
// Gloo binds to GLOO_SOCKET_IFNAME, else SQZ_SOCKET_IFNAME (set per rank by
// the testbed), else loopback. Rendezvous is a gloo::rendezvous::FileStore in
// a fresh directory that rank 0 makes under TMPDIR (or /tmp) and announces
// over the sqz communicator the driver already holds; the directory must be
// visible to every rank (one machine, or a shared file system). The driver's
// sqz communicator otherwise carries only the barrier before each timing and
// the max of the ranks' times.
#include <unistd.h>

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>

#include "perf/allreduce_test.h"

namespace {

using sqz::perf::Env;
using ReduceFn = void (*)(void*, const void*, const void*, size_t);

std::string interfaceName() {
  for (const char* name : {"GLOO_SOCKET_IFNAME", "SQZ_SOCKET_IFNAME"})
    if (const char* v = std::getenv(name); v && *v) return v;
  return "lo";
}

// Gloo's per-operation timeout: SQZ_TIMEOUT seconds, as sqz's own waits.
std::chrono::milliseconds timeout() {
  double secs = 300;
  if (const char* v = std::getenv("SQZ_TIMEOUT"); v && std::atof(v) > 0) secs = std::atof(v);
  return std::chrono::milliseconds(static_cast<long long>(secs * 1000));
}

// Rank 0's rendezvous directory, the same string on every rank.
std::string sharedDirectory(const Env& env) {
  char path[256] = {};
  if (env.rank == 0) {
    const char* tmp = std::getenv("TMPDIR");
    std::snprintf(path, sizeof path, "%s/gloo_rdv.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(path)) {
      std::perror("gloo_allreduce_perf: mkdtemp");
      path[0] = '\0';
    }
  }
  if (sqzBroadcast(path, path, sizeof path, sqzUint8, 0, env.comm, nullptr) != sqzSuccess) return {};
  return path;
}

// Connects every rank to every other once, on the first call.
std::shared_ptr<gloo::Context> context(const Env& env) {
  static std::shared_ptr<gloo::Context> ctx;
  if (ctx) return ctx;
  std::string dir = sharedDirectory(env);
  if (dir.empty()) return nullptr;
  gloo::transport::tcp::attr attr;
  attr.iface = interfaceName();
  auto device = gloo::transport::tcp::CreateDevice(attr);
  auto rdv = std::make_shared<gloo::rendezvous::Context>(env.rank, env.nranks);
  rdv->setTimeout(timeout());
  gloo::rendezvous::FileStore store(dir);
  rdv->connectFullMesh(store, device);
  // Every rank has read every address before the directory goes.
  gloo::BarrierOptions barrier(rdv);
  gloo::barrier(barrier);
  if (env.rank == 0) std::filesystem::remove_all(dir);
  ctx = rdv;
  return ctx;
}

template <typename T>
ReduceFn reduceFor(sqzRedOp_t op) {
  switch (op) {
    case sqzSum: return &gloo::sum<T>;
    case sqzProd: return &gloo::product<T>;
    case sqzMax: return &gloo::max<T>;
    case sqzMin: return &gloo::min<T>;
    default: return nullptr;  // Gloo has no average
  }
}

template <typename T>
void allreduce(const std::shared_ptr<gloo::Context>& ctx, const void* send, void* recv, size_t count,
               ReduceFn reduce) {
  gloo::AllreduceOptions opts(ctx);
  opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
  if (send != recv) opts.setInput(const_cast<T*>(static_cast<const T*>(send)), count);
  opts.setOutput(static_cast<T*>(recv), count);
  opts.setReduceFunction(reduce);
  opts.setTimeout(timeout());
  gloo::allreduce(opts);
}

sqzResult_t run(const void* send, void* recv, size_t count, sqzDataType_t t, sqzRedOp_t op, const Env& env) {
  if (env.device) {
    std::fprintf(stderr, "gloo_allreduce_perf: host buffers only (no -G 1)\n");
    return sqzInvalidArgument;
  }
  try {
    auto ctx = context(env);
    if (!ctx) return sqzSystemError;
    switch (t) {
      case sqzFloat32:
        if (auto f = reduceFor<float>(op)) return allreduce<float>(ctx, send, recv, count, f), sqzSuccess;
        break;
      case sqzFloat64:
        if (auto f = reduceFor<double>(op)) return allreduce<double>(ctx, send, recv, count, f), sqzSuccess;
        break;
      case sqzInt32:
        if (auto f = reduceFor<int32_t>(op)) return allreduce<int32_t>(ctx, send, recv, count, f), sqzSuccess;
        break;
      case sqzInt64:
        if (auto f = reduceFor<int64_t>(op)) return allreduce<int64_t>(ctx, send, recv, count, f), sqzSuccess;
        break;
      default: break;
    }
    std::fprintf(stderr, "gloo_allreduce_perf: float, double, int32 and int64 with sum, prod, max or min only\n");
    return sqzInvalidArgument;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gloo_allreduce_perf: rank %d: %s\n", env.rank, e.what());
    return sqzRemoteError;
  }
}

}  // namespace

int main(int argc, char** argv) {
  return sqz::perf::runPerf(argc, argv, sqz::perf::allreduceTest("gloo ring allreduce", run));
}
