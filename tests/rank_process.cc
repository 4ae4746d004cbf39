// A rank as a real process, for tests that need separate processes
// (launcher environments, a rank killed mid-job). Launched by
// test_processes.cc; reports through its exit code:
//   0 = ok, 10 + sqzResult_t = a sqz call failed, 3 = wrong result.
//   rank_process env-allreduce           init from env, allreduce, check
//   rank_process die DEAD_RANK           all reduce once; DEAD_RANK then
//                                        _exit(9)s, the others allreduce
//                                        again and must fail in time.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sqz.h"

namespace {

int check(sqzResult_t r, sqzComm_t comm, const char* what) {
  if (r != sqzSuccess) std::fprintf(stderr, "%s: %s (%s)\n", what, sqzGetErrorString(r), sqzGetLastError(comm));
  return r == sqzSuccess ? 0 : 10 + r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  sqzComm_t comm = nullptr;
  if (int rc = check(sqzCommInitFromEnv(&comm), nullptr, "sqzCommInitFromEnv")) return rc;
  int rank = -1, n = 0;
  sqzCommUserRank(comm, &rank);
  sqzCommCount(comm, &n);
  std::vector<int64_t> v(100003);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(i) * (rank + 1);
  if (int rc = check(sqzAllReduce(v.data(), v.data(), v.size(), sqzInt64, sqzSum, comm, nullptr), comm, "allreduce"))
    return rc;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != static_cast<int64_t>(i) * n * (n + 1) / 2) return 3;

  if (std::strcmp(argv[1], "die") == 0 && argc > 2) {
    if (rank == std::atoi(argv[2])) _exit(9);  // no cleanup: as if killed
    auto start = std::chrono::steady_clock::now();
    sqzResult_t r = sqzAllReduce(v.data(), v.data(), v.size(), sqzInt64, sqzSum, comm, nullptr);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "rank %d: second allreduce returned %d after %.2fs: %s\n", rank, r, secs,
                 sqzGetLastError(comm));
    sqzCommAbort(comm);
    if (r == sqzRemoteError || r == sqzTimeout) return 0;
    return 4;
  }
  return check(sqzCommDestroy(comm), nullptr, "sqzCommDestroy");
}
