// Round 8's probe (not part of the build): 8-byte (or argv[1]-byte) float32 sums,
// sqzAllReduce and MPI_Allreduce in alternating blocks of argv[2] calls (argv[3]
// blocks each, 20 untimed calls before each block) in one launch; per rank and
// block: us per call, voluntary and involuntary context switches per call, CPU
// changes per call (sched_getcpu after each call), user and system CPU per call.
// usage: small BYTES ITERS BLOCKS [ip]
// Build: g++ -O2 small.cc -I include $(mpicxx --showme:compile) $(mpicxx --showme:link) -L BUILD -lsqz
#include <mpi.h>
#include <sched.h>
#include <sqz.h>
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
static double tv(const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; }
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, n; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &n);
  sqzUniqueId id; if (rank == 0) sqzGetUniqueId(&id);
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  sqzComm_t comm; sqzCommInitRank(&comm, n, id, rank);
  const size_t count = std::atoi(argv[1]) / 4; const int iters = std::atoi(argv[2]); const int blocks = std::atoi(argv[3]);
  const bool ip = argc > 4 && std::strcmp(argv[4], "ip") == 0;
  std::vector<float> send(count, 1.0f), recv(count, 0.0f);
  float* out = ip ? send.data() : recv.data();
  std::string lines;
  for (int b = 0; b < 2 * blocks; ++b) {
    const bool mpi = b % 2 == 1;
    auto call = [&] {
      if (mpi) MPI_Allreduce(ip ? MPI_IN_PLACE : send.data(), out, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      else sqzAllReduce(send.data(), out, count, sqzFloat32, sqzSum, comm, nullptr);
    };
    for (int i = 0; i < 20; ++i) call();
    if (mpi) MPI_Barrier(MPI_COMM_WORLD); else sqzBarrier(comm);
    struct rusage ra, rb; getrusage(RUSAGE_SELF, &ra);
    int cpu = sched_getcpu(), moves = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) { call(); int c = sched_getcpu(); moves += c != cpu; cpu = c; }
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
    getrusage(RUSAGE_SELF, &rb);
    char buf[256];
    std::snprintf(buf, sizeof buf, "rank %d block %d %s%s: %.2f us/call nvcsw %.2f nivcsw %.3f moves %.3f utime %.2f stime %.2f\n", rank, b / 2,
                  mpi ? "mpi" : "sqz", ip ? "_ip" : "", us, double(rb.ru_nvcsw - ra.ru_nvcsw) / iters, double(rb.ru_nivcsw - ra.ru_nivcsw) / iters,
                  double(moves) / iters, (tv(rb.ru_utime) - tv(ra.ru_utime)) / iters, (tv(rb.ru_stime) - tv(ra.ru_stime)) / iters);
    lines += buf;
  }
  std::fputs(lines.c_str(), stdout);
  sqzCommDestroy(comm); MPI_Finalize();
}
