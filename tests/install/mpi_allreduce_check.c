/* A program written against include/sqz.h alone, as a user would: rank 0
 * makes the unique id, MPI_Bcast spreads it, every rank joins; then sqz's
 * allreduce must equal MPI_Allreduce bit for bit on integer data (and
 * agree within rounding on floats). Exit status 0 means all equal. */
#include <mpi.h>
#include <sqz.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                   \
  do {                                                                                \
    sqzResult_t r_ = (call);                                                          \
    if (r_ != sqzSuccess) {                                                           \
      fprintf(stderr, "%s failed: %s: %s\n", #call, sqzGetErrorString(r_), sqzGetLastError(comm)); \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                   \
    }                                                                                 \
  } while (0)

static uint64_t next(uint64_t* s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int main(int argc, char** argv) {
  int rank, nranks;
  sqzComm_t comm = NULL;
  sqzUniqueId id;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  if (rank == 0) CHECK(sqzGetUniqueId(&id));
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  CHECK(sqzCommInitRank(&comm, nranks, id, rank));

  const sqzDataType_t types[] = {sqzInt8, sqzUint8, sqzInt32, sqzUint32, sqzInt64, sqzUint64};
  const MPI_Datatype mtypes[] = {MPI_INT8_T, MPI_UINT8_T, MPI_INT32_T, MPI_UINT32_T, MPI_INT64_T, MPI_UINT64_T};
  const size_t sizes[] = {1, 1, 4, 4, 8, 8};
  const sqzRedOp_t ops[] = {sqzSum, sqzProd, sqzMax, sqzMin};
  const MPI_Op mops[] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN};
  const size_t counts[] = {1, 7, 1023, (1u << 20) + 3};
  int compared = 0, differ = 0;
  for (int t = 0; t < 6; ++t) {
    for (int o = 0; o < 4; ++o) {
      for (int c = 0; c < 4; ++c) {
        size_t n = counts[c], bytes = n * sizes[t];
        unsigned char* in = malloc(bytes);
        unsigned char* a = malloc(bytes);
        unsigned char* b = malloc(bytes);
        uint64_t seed = (uint64_t)rank * 1000 + t * 100 + o * 10 + c;
        for (size_t i = 0; i < bytes; ++i) in[i] = (unsigned char)next(&seed);
        CHECK(sqzAllReduce(in, a, n, types[t], ops[o], comm, NULL));
        MPI_Allreduce(in, b, (int)n, mtypes[t], mops[o], MPI_COMM_WORLD);
        ++compared;
        if (memcmp(a, b, bytes) != 0) {
          ++differ;
          fprintf(stderr, "rank %d: type %d op %d count %zu differs from MPI_Allreduce\n", rank, t, o, n);
        }
        free(in);
        free(a);
        free(b);
      }
    }
  }
  /* Floats: the summation order differs from MPI's, so compare within rounding. */
  {
    size_t n = 100003;
    float* in = malloc(n * sizeof(float));
    float* a = malloc(n * sizeof(float));
    float* b = malloc(n * sizeof(float));
    uint64_t seed = 77 + rank;
    for (size_t i = 0; i < n; ++i) in[i] = (float)((int64_t)(next(&seed) % 2001) - 1000) / 8.0f;
    CHECK(sqzAllReduce(in, a, n, sqzFloat32, sqzSum, comm, NULL));
    MPI_Allreduce(in, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    ++compared;
    for (size_t i = 0; i < n; ++i)
      if (a[i] != b[i]) { /* values are multiples of 1/8 below 2^13: sums are exact */
        ++differ;
        fprintf(stderr, "rank %d: float element %zu: %g vs %g\n", rank, i, a[i], b[i]);
        break;
      }
    free(in);
    free(a);
    free(b);
  }
  CHECK(sqzCommDestroy(comm));
  MPI_Allreduce(MPI_IN_PLACE, &differ, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("mpi_allreduce_check: %d ranks, %d comparisons per rank, %d differ\n", nranks, compared, differ);
  MPI_Finalize();
  return differ == 0 ? 0 : 1;
}
