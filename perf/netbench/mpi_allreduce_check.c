/* MPI_Allreduce bandwidth probe for the link testbed (perf/netbench).
 *
 *   mpi_allreduce_check [MiB=16] [iters=3] [warmup=1]
 *
 * Sums a float32 buffer of MiB mebibytes across all ranks, checks the
 * result, and prints per-iteration time, algbw = bytes / time and
 * busbw = algbw * 2 (n - 1) / n (the nccl-tests convention: the per-link
 * traffic of a bandwidth-optimal allreduce), in GB/s (1e9 bytes). Rank 0 also
 * prints where every rank runs (namespace, interface) as the testbed set it.
 *
 * Build: mpicc -O2 -o mpi_allreduce_check mpi_allreduce_check.c
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  double mib = argc > 1 ? atof(argv[1]) : 16.0;
  int iters = argc > 2 ? atoi(argv[2]) : 3;
  int warmup = argc > 3 ? atoi(argv[3]) : 1;
  size_t count = (size_t)(mib * 1024.0 * 1024.0) / sizeof(float);
  if (count == 0 || iters < 1 || warmup < 0) {
    if (rank == 0) fprintf(stderr, "usage: %s [MiB>0] [iters>=1] [warmup>=0]\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }

  /* Where am I? (set by testbed.sh's rank wrapper) */
  char where[256];
  const char* ns = getenv("SQZ_NETBENCH_NS");
  const char* ifn = getenv("SQZ_SOCKET_IFNAME");
  const char* addr = getenv("SQZ_NETBENCH_ADDR");
  const char* tls = getenv("UCX_TLS");
  snprintf(where, sizeof where, "rank %d: ns=%s if=%s addr=%s UCX_TLS=%s MASTER=%s:%s", rank,
           ns ? ns : "-", ifn ? ifn : "-", addr ? addr : "-", tls ? tls : "-",
           getenv("MASTER_ADDR") ? getenv("MASTER_ADDR") : "-",
           getenv("MASTER_PORT") ? getenv("MASTER_PORT") : "-");
  if (rank == 0) {
    printf("%s\n", where);
    for (int r = 1; r < n; ++r) {
      MPI_Recv(where, sizeof where, MPI_CHAR, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      printf("%s\n", where);
    }
    fflush(stdout);
  } else {
    MPI_Send(where, sizeof where, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
  }

  float* buf = malloc(count * sizeof(float));
  if (!buf) MPI_Abort(MPI_COMM_WORLD, 3);
  double best = 1e30, total = 0.0;
  int bad = 0;
  for (int it = -warmup; it < iters; ++it) {
    for (size_t i = 0; i < count; ++i) buf[i] = (float)(rank + 1);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const float want = (float)n * (float)(n + 1) / 2.0f;
    for (size_t i = 0; i < count; i += 4099) if (buf[i] != want) { bad = 1; break; }
    if (buf[count - 1] != want) bad = 1;
    if (it >= 0) {
      total += dt;
      if (dt < best) best = dt;
      if (rank == 0) {
        double bytes = (double)count * sizeof(float);
        double alg = bytes / dt / 1e9;
        printf("iter %d: %.3f s  algbw %.4f GB/s  busbw %.4f GB/s\n", it, dt, alg,
               alg * 2.0 * (n - 1) / n);
        fflush(stdout);
      }
    }
  }
  int anybad = 0;
  MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) {
    double bytes = (double)count * sizeof(float);
    double mean = total / iters;
    double alg = bytes / mean / 1e9;
    printf("mpi_allreduce_check: ranks %d  size %.1f MiB float32  iters %d  mean %.3f s  "
           "algbw %.4f GB/s  busbw %.4f GB/s  (best busbw %.4f GB/s)  check %s\n",
           n, mib, iters, mean, alg, alg * 2.0 * (n - 1) / n,
           bytes / best / 1e9 * 2.0 * (n - 1) / n, anybad ? "FAILED" : "ok");
  }
  free(buf);
  MPI_Finalize();
  return anybad ? 1 : 0;
}
