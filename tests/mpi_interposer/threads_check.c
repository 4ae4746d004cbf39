/* libsqz_mpi.so under MPI_THREAD_MULTIPLE: kThreads threads, each on its
 * own duplicate of MPI_COMM_WORLD, adopt their communicators and make
 * MPI_Allreduce calls at the same moment (a pthread barrier lines them up
 * before every call); the last thread sums integers (forwarded to MPI) on
 * its communicator meanwhile. Every float result must lie within q8's bound
 * (checked to reject a halved output), every integer result must be exact;
 * then each thread frees its communicator (its sqz side is destroyed).
 * Run under mpirun with LD_PRELOAD=libsqz_mpi.so and SQZ_COMPRESSION=q8
 * (tests/mpi_interposer/run_threads_check.sh checks the summary's counts).
 * Exit status 0 when every check passed. */
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kThreads = 3, kCalls = 8, kCount = 100003 };

static pthread_barrier_t g_barrier;
static int g_rank, g_size;

static float input(int thread, int call, int rank, int i) {
  return (float)sin(0.001 * i + 0.7 * rank + 0.3 * thread + 0.11 * call) * (1.0f + 0.1f * (float)rank);
}

/* q8's bound for one call (tests/test_compressed.cc denseCodecBound), with
 * the previous call's residual covered by the n^2 term. */
static double bound(int n) { return (n + n * n) * 2.0 * 1.4 / 255.0 + 1e-4; }

static int checkFloats(int thread, int call, const float* out) {
  const double b = bound(g_size);
  int failures = 0, halvedRejected = 0;
  for (int i = 0; i < kCount; ++i) {
    double exact = 0;
    for (int r = 0; r < g_size; ++r) exact += input(thread, call, r, i);
    if (fabs(out[i] - exact) > b && failures++ < 3)
      fprintf(stderr, "rank %d thread %d call %d: element %d = %g, exact %g, bound %g\n", g_rank, thread, call, i,
              out[i], exact, b);
    halvedRejected |= fabs(out[i] / 2 - exact) > b;
  }
  if (!halvedRejected) {
    fprintf(stderr, "rank %d thread %d: the bound accepts a halved output\n", g_rank, thread);
    ++failures;
  }
  return failures;
}

static MPI_Comm g_comms[kThreads];

static void* worker(void* arg) {
  const int thread = (int)(size_t)arg;
  const int integers = thread == kThreads - 1;
  MPI_Comm comm = g_comms[thread];
  float* f = malloc(sizeof(float) * kCount);
  int* n = malloc(sizeof(int) * kCount);
  size_t failures = 0;
  for (int call = 0; call < kCalls; ++call) {
    for (int i = 0; i < kCount; ++i) {
      f[i] = input(thread, call, g_rank, i);
      n[i] = g_rank * 1000 + i % 977 + call;
    }
    pthread_barrier_wait(&g_barrier);
    if (integers) {
      MPI_Allreduce(MPI_IN_PLACE, n, kCount, MPI_INT, MPI_SUM, comm);
      for (int i = 0; i < kCount; ++i) {
        const int exact = 1000 * g_size * (g_size - 1) / 2 + g_size * (i % 977 + call);
        if (n[i] != exact && failures++ < 3)
          fprintf(stderr, "rank %d thread %d: int element %d = %d, expected %d\n", g_rank, thread, i, n[i], exact);
      }
    } else {
      MPI_Allreduce(MPI_IN_PLACE, f, kCount, MPI_FLOAT, MPI_SUM, comm);
      failures += checkFloats(thread, call, f);
    }
  }
  free(f);
  free(n);
  MPI_Comm_free(&comm);  /* collective on a communicator only this thread uses */
  return (void*)failures;
}

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  if (provided < MPI_THREAD_MULTIPLE) {
    fprintf(stderr, "threads_check: the MPI provides thread level %d, not MPI_THREAD_MULTIPLE\n", provided);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  pthread_barrier_init(&g_barrier, NULL, kThreads);
  /* MPI_Comm_dup is collective on MPI_COMM_WORLD: threads would reach it
   * in a different order on each rank, so the duplicates are made here. */
  for (int t = 0; t < kThreads; ++t) MPI_Comm_dup(MPI_COMM_WORLD, &g_comms[t]);
  pthread_t threads[kThreads];
  for (int t = 0; t < kThreads; ++t) pthread_create(&threads[t], NULL, worker, (void*)(size_t)t);
  size_t failures = 0;
  for (int t = 0; t < kThreads; ++t) {
    void* r = NULL;
    pthread_join(threads[t], &r);
    failures += (size_t)r;
  }
  unsigned long long local = failures, total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0) printf("threads_check: %d ranks x %d threads x %d calls: %llu failures\n", g_size, kThreads, kCalls, total);
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
