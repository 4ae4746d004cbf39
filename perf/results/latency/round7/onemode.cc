// Round 7's probe (not part of the build): one mode per process, so that
// getrusage separates them: sqzAllReduce of argv[2] MiB float32 sum, out of
// place ("oop") or in place ("ip"), argv[3] timed calls after 5 untimed; each
// rank prints its time per call, page faults, context switches and user/system
// CPU time per call. The algorithm comes from SQZ_COMPRESSION (@ring, @shm_rs).
// Build: g++ -O2 onemode.cc -I include $(mpicxx --showme:compile) $(mpicxx --showme:link) -L BUILD -lsqz
#include <mpi.h>
#include <sqz.h>
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, n; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &n);
  sqzUniqueId id; if (rank == 0) sqzGetUniqueId(&id);
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  sqzComm_t comm; sqzCommInitRank(&comm, n, id, rank);
  const bool oop = std::strcmp(argv[1], "oop") == 0;
  const size_t count = std::atoi(argv[2]) * (1u << 20) / 4; const int iters = std::atoi(argv[3]);
  std::vector<float> send(count, 1.0f), recv(count, 0.0f);
  for (int i = 0; i < 5; ++i) sqzAllReduce(send.data(), oop ? recv.data() : send.data(), count, sqzFloat32, sqzSum, comm, nullptr);
  struct rusage a, b; getrusage(RUSAGE_SELF, &a);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) sqzAllReduce(send.data(), oop ? recv.data() : send.data(), count, sqzFloat32, sqzSum, comm, nullptr);
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
  getrusage(RUSAGE_SELF, &b);
  std::printf("rank %d %s: %.1f us/call, minflt/call %.2f, majflt %ld, nvcsw/call %.1f, nivcsw/call %.1f, utime %.1f stime %.1f us/call\n", rank, argv[1], us,
              double(b.ru_minflt - a.ru_minflt) / iters, b.ru_majflt - a.ru_majflt, double(b.ru_nvcsw - a.ru_nvcsw) / iters,
              double(b.ru_nivcsw - a.ru_nivcsw) / iters,
              ((b.ru_utime.tv_sec - a.ru_utime.tv_sec) * 1e6 + (b.ru_utime.tv_usec - a.ru_utime.tv_usec)) / iters,
              ((b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1e6 + (b.ru_stime.tv_usec - a.ru_stime.tv_usec)) / iters);
  sqzCommDestroy(comm); MPI_Finalize();
}
