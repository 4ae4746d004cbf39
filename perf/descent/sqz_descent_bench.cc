// sqz_descent_bench: descent per second of every fixed spec and of auto on
// the same drifting gradient stream (issue 10's measurement).
//
// Each call's gradient is synthetic with drifting statistics: a fraction
// p_t of coordinates carries N(0, 1) values and the rest N(0, 1e-3), p_t
// falling from 0.3 to 0.0003 over the calls (spread early, concentrated
// late), as gradients concentrate during training. For every spec, T calls
// of sqzAllReduceEx (sqzAvg, one sqzState_t per spec) are timed (slowest
// rank, after a barrier), and the gain of the codec that ran is computed
// exactly from the call's reduced statistics with DESIGN.md section 1's
// definitions (kernels/grad_stats.h gain(): kept squared norm for top-K,
// 1/(1+omega) for quantizers, 1 for exact). Descent rate = mean gain /
// median seconds per call.
//   mpirun -np 4 sqz_descent_bench [-n elements] [-t calls] [-s spec,spec,...] [-g DIR] [-v]
// -g DIR: real gradients instead of the generator. Rank r replays its own
// captured gradients DIR/rank<r>_step<S>.f32 (raw little-endian float32, as
// perf/train/sqz_train_bench --capture writes them), in step order, one per
// call, cycling when there are fewer files than calls; the element count is
// the files' (-n is ignored). Every spec sees the same sequence.
// -v: one line per call (rank 0's tune-free breakdown from sqzGetCallInfo:
// encode, transfer, decode; the slowest rank's total; the plan and gain).
#include <dirent.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/splitmix.h"
#include "kernels/cpu_codec.h"
#include "kernels/grad_stats.h"
#include "sqz.h"
#include "src/codec/codec_spec.h"

namespace {

// Approximately normal from two uniforms (sum of 4 uniforms, scaled).
float gaussianAt(uint64_t key) {
  uint64_t a = sqz::splitmix64(key), b = sqz::splitmix64(key ^ 0x5555);
  double s = (a & 0xffff) + ((a >> 16) & 0xffff) + (b & 0xffff) + ((b >> 16) & 0xffff);
  return static_cast<float>((s / 65535.0 - 2.0) * 1.7320508);
}

void makeGradient(std::vector<float>& g, int call, int calls, int rank) {
  const double p = 0.3 * std::pow(1e-3, calls > 1 ? static_cast<double>(call) / (calls - 1) : 0.0);
  const uint64_t threshold = static_cast<uint64_t>(p * 18446744073709551615.0);
  for (size_t i = 0; i < g.size(); ++i) {
    // Large coordinates are the same on every rank (a shared direction), small ones are noise.
    const bool large = sqz::splitmix64(i * 1315423911ull + static_cast<uint64_t>(call) * 2654435761ull) < threshold;
    const float v = gaussianAt((i << 20) ^ (static_cast<uint64_t>(call) << 8) ^ static_cast<uint64_t>(rank));
    g[i] = large ? v : 1e-3f * v;
  }
}

// -g DIR: this rank's captured gradients, in step order (all the same size).
std::vector<std::vector<float>> loadCaptured(const std::string& dir, int rank, std::vector<int>* stepsOut) {
  const std::string prefix = "rank" + std::to_string(rank) + "_step";
  std::vector<std::pair<int, std::string>> files;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    std::fprintf(stderr, "rank %d: -g %s: cannot open the directory\n", rank, dir.c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > prefix.size() + 4 && name.compare(0, prefix.size(), prefix) == 0 &&
        name.compare(name.size() - 4, 4, ".f32") == 0) {
      const std::string num = name.substr(prefix.size(), name.size() - prefix.size() - 4);
      if (num.find_first_not_of("0123456789") == std::string::npos) files.emplace_back(std::atoi(num.c_str()), name);
    }
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  std::vector<std::vector<float>> out;
  for (const auto& f : files) {
    const std::string path = dir + "/" + f.second;
    FILE* fp = std::fopen(path.c_str(), "rb");
    long bytes = -1;
    if (fp && std::fseek(fp, 0, SEEK_END) == 0) bytes = std::ftell(fp);
    if (!fp || bytes <= 0 || bytes % 4 != 0 || (!out.empty() && static_cast<size_t>(bytes) != out[0].size() * 4)) {
      std::fprintf(stderr, "rank %d: %s: unreadable, empty, or not the size of the other files\n", rank, path.c_str());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    std::rewind(fp);
    std::vector<float> g(static_cast<size_t>(bytes) / 4);
    if (std::fread(g.data(), 4, g.size(), fp) != g.size()) {
      std::fprintf(stderr, "rank %d: %s: short read\n", rank, path.c_str());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    std::fclose(fp);
    out.push_back(std::move(g));
    stepsOut->push_back(f.first);
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  size_t n = 1 << 20;
  int calls = 6;
  std::string specList = "none,bf16,q8,q4,q2,q1,topk:0.1,topk:0.01,topk:0.001,randk:0.01,auto";
  bool verbose = false;
  std::string gradDir;
  int c;
  while ((c = getopt(argc, argv, "n:t:s:g:v")) != -1) {
    if (c == 'v') verbose = true;
    if (c == 'g') gradDir = optarg;
    if (c == 'n') n = static_cast<size_t>(std::atoll(optarg));
    if (c == 't') calls = std::atoi(optarg);
    if (c == 's') specList = optarg;
  }
  std::vector<std::string> specs;
  for (size_t pos = 0; pos <= specList.size();) {
    size_t comma = specList.find(',', pos);
    if (comma == std::string::npos) comma = specList.size();
    specs.push_back(specList.substr(pos, comma - pos));
    pos = comma + 1;
  }
  // -g: every rank must have the same number of files of the same size.
  std::vector<std::vector<float>> captured;
  std::vector<int> capturedSteps;
  if (!gradDir.empty()) {
    captured = loadCaptured(gradDir, rank, &capturedSteps);
    long mine[2] = {static_cast<long>(captured.size()), captured.empty() ? 0L : static_cast<long>(captured[0].size())};
    long lo[2], hi[2];
    MPI_Allreduce(mine, lo, 2, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(mine, hi, 2, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (lo[0] == 0 || lo[0] != hi[0] || lo[1] != hi[1]) {
      if (rank == 0)
        std::fprintf(stderr, "-g %s: ranks have %ld-%ld files of %ld-%ld floats (need rank<R>_step<S>.f32 for every rank, "
                     "same count and size)\n", gradDir.c_str(), lo[0], hi[0], lo[1], hi[1]);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    n = captured[0].size();
  }
  sqzUniqueId id;
  if (rank == 0) sqzGetUniqueId(&id);
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  sqzComm_t comm;
  if (sqzCommInitRank(&comm, nranks, id, rank) != sqzSuccess) {
    std::fprintf(stderr, "init: %s\n", sqzGetLastError(nullptr));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0) {
    std::printf("# sqz_descent_bench: %d ranks, %zu float32 elements (%.1f MiB), %d calls per spec, sqzAvg\n", nranks, n,
                n * 4.0 / (1 << 20), calls);
    if (captured.empty()) {
      std::printf("# gradients: synthetic, drifting (p_t 0.3 -> 0.0003)\n");
    } else {
      std::string steps;
      for (int t = 0; t < calls; ++t) steps += " " + std::to_string(capturedSteps[t % capturedSteps.size()]);
      std::printf("# gradients: captured in %s (%zu files per rank), calls replay steps%s\n", gradDir.c_str(),
                  captured.size(), steps.c_str());
    }
  }
  std::vector<float> g(n), out(n);
  struct Row {
    std::string spec;
    double medianSeconds, meanGain;
    std::map<std::string, int> plans;
  };
  std::vector<Row> rows;
  for (const std::string& spec : specs) {
    sqzState_t state;
    sqzStateCreate(comm, n, sqzFloat32, &state);
    std::vector<double> times, gains;
    Row row{spec, 0, 0, {}};
    for (int t = 0; t < calls; ++t) {
      if (captured.empty()) makeGradient(g, t, calls, rank);
      else g = captured[t % captured.size()];
      MPI_Barrier(MPI_COMM_WORLD);
      double start = MPI_Wtime();
      sqzResult_t r = sqzAllReduceEx(g.data(), out.data(), n, sqzFloat32, sqzAvg, spec.c_str(), state, comm, nullptr);
      double secs = MPI_Wtime() - start;
      if (r != sqzSuccess) {
        std::fprintf(stderr, "rank %d %s: %s\n", rank, spec.c_str(), sqzGetLastError(comm));
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      MPI_Allreduce(MPI_IN_PLACE, &secs, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      sqzCallInfo info;
      sqzGetCallInfo(comm, &info);
      // The call's statistics (of the fresh gradient), summed over ranks.
      sqz::GradStats stats;
      sqz::clearStats(&stats);
      sqz::gradStatsCpu(g.data(), sqzFloat32, nullptr, n, &stats);
      MPI_Allreduce(MPI_IN_PLACE, &stats, sqz::GradStats::kDoubles, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      double gain = info.exact ? 1.0 : sqz::gain(stats, sqz::parseCodecSpec(info.codec));
      if (verbose && rank == 0)
        std::printf("#   %-12s call %d: %8.2f ms (rank 0: enc %.2f xfer %.2f dec %.2f total %.2f) gain %.4f %s\n",
                    spec.c_str(), t, secs * 1e3, info.encodeSeconds * 1e3, info.transferSeconds * 1e3,
                    info.decodeSeconds * 1e3, info.totalSeconds * 1e3, gain, info.plan);
      if (t > 0 || calls == 1) times.push_back(secs);  // the first call may calibrate
      gains.push_back(gain);
      row.plans[info.plan]++;
    }
    sqzStateDestroy(state);
    row.medianSeconds = median(times);
    for (double x : gains) row.meanGain += x / gains.size();
    rows.push_back(row);
  }
  if (rank == 0) {
    double autoRate = 0, bestFixed = 0;
    for (const Row& r : rows) {
      double rate = r.meanGain / r.medianSeconds;
      if (r.spec == "auto") autoRate = rate;
      else bestFixed = std::max(bestFixed, rate);
    }
    std::printf("# %-14s %12s %10s %14s %10s  %s\n", "spec", "median(ms)", "mean gain", "descent(1/s)", "vs auto",
                "plans that ran (count)");
    for (const Row& r : rows) {
      double rate = r.meanGain / r.medianSeconds;
      std::string plans;
      for (const auto& kv : r.plans) plans += kv.first + "(" + std::to_string(kv.second) + ") ";
      std::printf("  %-14s %12.2f %10.4f %14.3f %10.3f  %s\n", r.spec.c_str(), r.medianSeconds * 1e3, r.meanGain, rate,
                  autoRate > 0 ? rate / autoRate : 0.0, plans.c_str());
    }
    if (autoRate > 0) std::printf("# auto / best fixed spec: %.3f\n", autoRate / bestFixed);
  }
  sqzCommDestroy(comm);
  MPI_Finalize();
  return 0;
}
