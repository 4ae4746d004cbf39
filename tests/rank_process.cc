// A rank as a real process, for tests that need separate processes
// (launcher environments, a rank killed mid-job). Launched by
// test_processes.cc; reports through its exit code:
//   0 = ok, 10 + sqzResult_t = a sqz call failed, 3 = wrong result.
// SQZ_TEST_NOFILE=N lowers the process's file descriptor limit to N.
//   rank_process env-allreduce           init from env, allreduce, check
//   rank_process die DEAD_RANK           all reduce once; DEAD_RANK then
//                                        _exit(9)s, the others allreduce
//                                        again and must fail in time.
//   rank_process plan SPEC EXPECT [WIRE] one fp32 allreduce with SPEC: the
//                                        plan that ran must be EXPECT, the
//                                        result within the bound of that plan
//                                        (harness/lossy_check.h, nodes from
//                                        SQZ_NODE_ID) while the same result
//                                        zeroed, halved or offset is not,
//                                        bitwise equal on all ranks, and at
//                                        most WIRE bytes sent by each.
//   rank_process sizes SPEC N...         fp32 allreduces of N values each
//                                        with SPEC, each checked as above
//                                        (whatever plan ran).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "harness/lossy_check.h"
#include "harness/reference.h"
#include "sqz.h"

namespace {

int check(sqzResult_t r, sqzComm_t comm, const char* what) {
  if (r != sqzSuccess) std::fprintf(stderr, "%s: %s (%s)\n", what, sqzGetErrorString(r), sqzGetLastError(comm));
  return r == sqzSuccess ? 0 : 10 + r;
}

// One fp32 allreduce of `count` values with `spec`: the plan that ran must
// be `expectPlan` (when given), the result within the bound of that plan
// while the same result zeroed, halved or offset is not, bitwise equal on
// all ranks, and at most `maxWire` bytes sent by each (when given).
int checkedCall(sqzComm_t comm, int rank, int n, size_t count, const char* spec, const char* expectPlan,
                const char* maxWire) {
  std::vector<float> g(count), out(count);
  auto valueAt = [](size_t i, int r) { return static_cast<float>(((i * 2654435761u + r * 40503u) % 2001)) / 1000.0f - 1.0f; };
  for (size_t i = 0; i < count; ++i) g[i] = valueAt(i, rank);
  if (int rc = check(sqzAllReduceEx(g.data(), out.data(), count, sqzFloat32, sqzSum, spec, nullptr, comm, nullptr),
                     comm, "sqzAllReduceEx"))
    return rc;
  sqzCallInfo info;
  sqzGetCallInfo(comm, &info);
  if (expectPlan && std::strcmp(info.plan, expectPlan) != 0) {
    std::fprintf(stderr, "rank %d ran plan %s, expected %s\n", rank, info.plan, expectPlan);
    return 5;
  }
  if (maxWire && info.wireBytes > std::strtoull(maxWire, nullptr, 10)) {
    std::fprintf(stderr, "rank %d sent %zu bytes, more than %s\n", rank, info.wireBytes, maxWire);
    return 9;
  }
  // Every rank's node, as SQZ_NODE_ID names it: hierarchical plans see node sums.
  const char* nodeId = std::getenv("SQZ_NODE_ID");
  uint64_t mine = sqz::test::fnv1a(nodeId ? nodeId : "", nodeId ? std::strlen(nodeId) : 0);
  std::vector<uint64_t> ids(n);
  if (int rc = check(sqzAllGather(&mine, ids.data(), 1, sqzUint64, comm, nullptr), comm, "sqzAllGather")) return rc;
  sqz::test::LossyCall call = sqz::test::LossyCall::of(info, sqzFloat32, sqzSum);
  std::vector<uint64_t> nodes;  // in order of first appearance
  for (uint64_t x : ids)
    if (std::find(nodes.begin(), nodes.end(), x) == nodes.end()) nodes.push_back(x);
  for (uint64_t x : ids) call.nodeOf.push_back(static_cast<int>(std::find(nodes.begin(), nodes.end(), x) - nodes.begin()));
  sqz::test::Contributions inputs(n, std::vector<float>(count));
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < count; ++i) inputs[r][i] = valueAt(i, r);
  std::string why = sqz::test::checkLossy(inputs, out, call);
  if (!why.empty()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, why.c_str());
    return 6;
  }
  for (auto b : {sqz::test::Breakage::Zeroed, sqz::test::Breakage::Halved, sqz::test::Breakage::Offset})
    if (sqz::test::checkLossy(inputs, sqz::test::breakOutput(out, b, n), call).empty()) {
      std::fprintf(stderr, "rank %d: the check passed the result %s\n", rank, sqz::test::breakageName(b));
      return 8;
    }
  uint64_t h = sqz::test::fnv1a(out.data(), count * 4);
  std::vector<uint64_t> all(n);
  if (int rc = check(sqzAllGather(&h, all.data(), 1, sqzUint64, comm, nullptr), comm, "sqzAllGather")) return rc;
  for (int r = 0; r < n; ++r)
    if (all[r] != all[0]) return 7;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  // SQZ_TEST_NOFILE=N: this process may open at most N file descriptors.
  if (const char* nofile = std::getenv("SQZ_TEST_NOFILE")) {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = static_cast<rlim_t>(std::atol(nofile));
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  sqzComm_t comm = nullptr;
  // Whatever path returns (an expected error included), the communicator
  // goes: the ASan run's leak check covers this program too.
  struct Destroy {
    sqzComm_t& comm;
    ~Destroy() {
      if (comm) sqzCommDestroy(comm);
    }
  } destroy{comm};
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

  if (std::strcmp(argv[1], "plan") == 0 && argc > 3) {
    if (int rc = checkedCall(comm, rank, n, 300007, argv[2], argv[3], argc > 4 ? argv[4] : nullptr)) return rc;
    return check(sqzCommDestroy(std::exchange(comm, nullptr)), nullptr, "sqzCommDestroy");
  }
  if (std::strcmp(argv[1], "sizes") == 0 && argc > 3) {
    for (int i = 3; i < argc; ++i)
      if (int rc = checkedCall(comm, rank, n, std::strtoull(argv[i], nullptr, 10), argv[2], nullptr, nullptr))
        return rc;
    return check(sqzCommDestroy(std::exchange(comm, nullptr)), nullptr, "sqzCommDestroy");
  }
  if (std::strcmp(argv[1], "die") == 0 && argc > 2) {
    if (rank == std::atoi(argv[2])) _exit(9);  // no cleanup: as if killed
    auto start = std::chrono::steady_clock::now();
    sqzResult_t r = sqzAllReduce(v.data(), v.data(), v.size(), sqzInt64, sqzSum, comm, nullptr);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "rank %d: second allreduce returned %d after %.2fs: %s\n", rank, r, secs,
                 sqzGetLastError(comm));
    sqzCommAbort(std::exchange(comm, nullptr));
    if (r == sqzRemoteError || r == sqzTimeout) return 0;
    return 4;
  }
  return check(sqzCommDestroy(std::exchange(comm, nullptr)), nullptr, "sqzCommDestroy");
}
