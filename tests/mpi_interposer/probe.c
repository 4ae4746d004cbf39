/* Small MPI programs for run_probe_checks.sh:
 *   probe sum TOL    one MPI_Allreduce of 100003 floats (sum); fails when any
 *                    element is further than TOL from the exact sum (a q8
 *                    result is, an exact one is not)
 *   probe mismatch   MPI_ERRORS_RETURN; rank r passes count 100003 + r (an
 *                    erroneous program): a served call must fail on every
 *                    rank through the error handler with libsqz_mpi's error
 *                    string, and a correct call afterwards must succeed */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kCount = 100003 };

static float input(int rank, int i) { return (float)cos(0.0007 * i + rank) * (1.0f + 0.25f * (float)rank); }

static double maxError(const float* out, int count, int nranks) {
  double worst = 0;
  for (int i = 0; i < count; ++i) {
    double exact = 0;
    for (int r = 0; r < nranks; ++r) exact += input(r, i);
    worst = fmax(worst, fabs(out[i] - exact));
  }
  return worst;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  const char* mode = argc > 1 ? argv[1] : "";
  float* x = malloc(sizeof(float) * (kCount + 8));
  for (int i = 0; i < kCount + 8; ++i) x[i] = input(rank, i);
  int failed = 0;
  if (!strcmp(mode, "sum") && argc > 2) {
    const double tolerance = atof(argv[2]);
    MPI_Allreduce(MPI_IN_PLACE, x, kCount, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const double err = maxError(x, kCount, nranks);
    printf("probe sum rank %d: max error %.3g (tolerance %.3g)\n", rank, err, tolerance);
    failed = !(err <= tolerance);
  } else if (!strcmp(mode, "mismatch")) {
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    const int rc = MPI_Allreduce(MPI_IN_PLACE, x, kCount + rank, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    char text[MPI_MAX_ERROR_STRING] = "";
    int length = 0;
    if (rc != MPI_SUCCESS) MPI_Error_string(rc, text, &length);
    printf("probe mismatch rank %d: rc %d '%s'\n", rank, rc, text);
    failed = rc == MPI_SUCCESS || !strstr(text, "sqz");
    for (int i = 0; i < kCount; ++i) x[i] = input(rank, i);
    const int again = MPI_Allreduce(MPI_IN_PLACE, x, kCount, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const double err = maxError(x, kCount, nranks);
    printf("probe mismatch rank %d: next call rc %d, max error %.3g\n", rank, again, err);
    failed |= again != MPI_SUCCESS || !(err < 0.5);
  } else {
    fprintf(stderr, "usage: probe sum TOL | probe mismatch\n");
    failed = 1;
  }
  free(x);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
