// A bounded soak of the library under a random load, with every result
// checked, memory and file descriptors watched, and (--fault) a rank
// killed at a random moment.
//
//   sqz_soak [--seconds S | --minutes M] [--ranks 4] [--seed X] [--fault]
//
// The driver starts `ranks` processes of this program (--rank R), which
// form a communicator from the environment (RANK, WORLD_SIZE, SQZ_ROOT)
// and then, call after call, draw the same random mix from (seed, call):
//   allreduce of 1 element to 16 Mi (log-uniform), float32/16/bf16 sums and
//   averages with any codec, auto, a forced plan or the communicator's
//   policy, in place or not, on a fresh sqzState (created and destroyed
//   around the call) or the state keyed by (recvbuff, count); exact
//   allreduces of other types and ops; broadcast, allgather, barrier;
//   policy changes; and the communicator destroyed and formed again (rank 0
//   makes a new unique id and broadcasts it over the old one).
// Results are bitwise identical on all ranks (hashes allgathered), and
// one rank per call (in turn) checks it against the fp64 reference: the
// bound of the codec that ran for lossy calls (harness/lossy_check.h),
// exact references otherwise. Lossy calls are checked only on a fresh
// error-feedback state (a keyed state is used once per communicator), so
// what each rank contributed is its input. Each time the communicator is
// re-formed, each rank samples its RSS and open descriptors; after the
// warm-up (the first third of the run), both must stay flat.
//
// --fault: after a random moment in the middle of the run the driver
// SIGKILLs a random rank; the others must fail their current or next call
// (sqzRemoteError or sqzTimeout, SQZ_TIMEOUT=5) and exit within the
// timeout plus their longest local step, none may hang; then a fresh set
// of processes forms a new communicator and soaks for a few seconds.
//
// Exit code 0 when everything held. Rank exit codes: 0 done, 42 saw the
// expected failure (fault runs), 3 wrong result, 4 not flat, 10 + r a
// failed call.
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/dtype.h"
#include "harness/lossy_check.h"
#include "harness/reference.h"
#include "kernels/half.h"
#include "sqz.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
Clock::time_point plusSeconds(Clock::time_point t, double s) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

struct Options {
  double seconds = 60;
  int ranks = 4;
  uint64_t seed = 0;
  bool fault = false;
  bool judgeFlat = true;  // false: a run too short to judge RSS and descriptors (the fault run's fresh one)
  int rank = -1;  // a rank process when >= 0
};

Options parse(int argc, char** argv) {
  Options o;
  o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") o.seconds = std::atof(next().c_str());
    else if (a == "--minutes") o.seconds = 60 * std::atof(next().c_str());
    else if (a == "--ranks") o.ranks = std::atoi(next().c_str());
    else if (a == "--seed") o.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--fault") o.fault = true;
    else if (a == "--no-flat-check") o.judgeFlat = false;
    else if (a == "--rank") o.rank = std::atoi(next().c_str());
    else {
      std::fprintf(stderr, "usage: %s [--seconds S | --minutes M] [--ranks N] [--seed X] [--fault]\n", argv[0]);
      std::exit(2);
    }
  }
  if (o.ranks < 2 || o.seconds <= 0) {
    std::fprintf(stderr, "need --ranks >= 2 and a positive duration\n");
    std::exit(2);
  }
  return o;
}

// ---------------------------------------------------------------- rank side

// Fast counter-based data: element i of (key) as a uniform in [-1, 1).
inline uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct Call {
  enum Kind { kLossy, kExact, kBroadcast, kAllGather, kBarrier, kPolicy, kReform } kind = kLossy;
  size_t count = 0;
  sqzDataType_t type = sqzFloat32;
  sqzRedOp_t op = sqzSum;
  std::string spec;     // lossy: "" = the communicator's policy
  bool inPlace = false;
  bool freshState = true;  // lossy: an explicit state made for the call, else the keyed one
  bool sparse = false;     // lossy: 1% of the elements nonzero
  int root = 0;
};

const char* const kSpecs[] = {"none",       "bf16",        "fp16",          "q8",        "q4",
                              "q2",         "q1",          "q4:rn",         "q8:block=64", "topk:0.01",
                              "topk:0.1",   "topk:0.05:int8", "topk:0.02:bf16", "randk:0.05", "randk:0.1:rescale",
                              "auto",       "auto",        "@qring:q4",     "@qa2a:q2",  "@sparse_split:topk:0.01",
                              "@qring:bf16", "@randk:randk:0.02:bf16"};
constexpr size_t kNumSpecs = sizeof(kSpecs) / sizeof(kSpecs[0]);

// The same draw on every rank: from (seed, index).
Call drawCall(uint64_t seed, uint64_t index, int nranks) {
  std::mt19937_64 rng(mix(seed ^ mix(index)));
  auto uniform = [&](double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); };
  Call c;
  const double u = uniform(0, 1);
  // Sizes log-uniform from 1 element to 16 Mi.
  c.count = static_cast<size_t>(std::exp2(uniform(0, 24)));
  c.inPlace = rng() % 2;
  if (u < 0.70) {
    c.kind = Call::kLossy;
    const sqzDataType_t types[] = {sqzFloat32, sqzFloat32, sqzFloat16, sqzBfloat16};
    c.type = types[rng() % 4];
    c.op = rng() % 3 == 0 ? sqzAvg : sqzSum;
    c.spec = rng() % 5 == 0 ? "" : kSpecs[rng() % kNumSpecs];
    c.freshState = rng() % 2;
    c.sparse = rng() % 6 == 0;
  } else if (u < 0.82) {
    c.kind = Call::kExact;
    c.count = std::min<size_t>(c.count, 1 << 20);
    c.type = static_cast<sqzDataType_t>(rng() % sqzNumTypes);
    c.op = static_cast<sqzRedOp_t>(rng() % sqzNumOps);
  } else if (u < 0.87) {
    c.kind = Call::kBroadcast;
    c.count = std::min<size_t>(c.count, 1 << 20);
    c.type = static_cast<sqzDataType_t>(rng() % sqzNumTypes);
    c.root = static_cast<int>(rng() % nranks);
  } else if (u < 0.91) {
    c.kind = Call::kAllGather;
    c.count = std::min<size_t>(c.count, 1 << 18);
    c.type = static_cast<sqzDataType_t>(rng() % sqzNumTypes);
  } else if (u < 0.93) {
    c.kind = Call::kBarrier;
  } else if (u < 0.96) {
    c.kind = Call::kPolicy;
    c.spec = kSpecs[rng() % kNumSpecs];
  } else {
    c.kind = Call::kReform;
  }
  return c;
}

// Rank r's float input of lossy call `index` (as the type stores it).
std::vector<float> lossyInput(uint64_t seed, uint64_t index, int r, const Call& c) {
  std::vector<float> x(c.count);
  const uint64_t key = mix(seed ^ mix(index) ^ (0x1234567ull * (r + 1)));
  const float scale = 1.0f + r;
  for (size_t i = 0; i < c.count; ++i) {
    const uint64_t h = mix(key + i);
    float v = (static_cast<float>(h >> 40) * 0x1p-23f - 1.0f) * scale;
    if (c.sparse && (h & 127) != 0) v = 0.0f;
    if (c.type == sqzFloat16) v = sqz::fp16ToFloat(sqz::floatToFp16(v));
    if (c.type == sqzBfloat16) v = sqz::bf16ToFloat(sqz::floatToBf16(v));
    x[i] = v;
  }
  return x;
}

std::vector<unsigned char> toType(const std::vector<float>& x, sqzDataType_t type) {
  std::vector<unsigned char> out(x.size() * sqz::dataTypeSize(type) + 1);
  for (size_t i = 0; i < x.size(); ++i) {
    if (type == sqzFloat32) {
      std::memcpy(out.data() + 4 * i, &x[i], 4);
    } else {
      const uint16_t h = type == sqzFloat16 ? sqz::floatToFp16(x[i]) : sqz::floatToBf16(x[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

long residentKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

int openDescriptors() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n - 1;  // the iterator's own
}

class RankSoak {
 public:
  RankSoak(const Options& o) : o_(o) {}

  int run() {
    // A fixed mmap threshold (the dynamic one keeps freed large buffers in
    // the heap), and a trim before each sample: RSS follows what is live.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    start_ = Clock::now();
    if (int rc = check(sqzCommInitFromEnv(&comm_), "sqzCommInitFromEnv")) return rc;
    sqzCommUserRank(comm_, &rank_);
    sqzCommCount(comm_, &n_);
    sample();
    uint64_t index = 0;
    for (;;) {
      // Every rank stops after the same call: the first rank out of time says so.
      int32_t done = secondsSince(start_) >= o_.seconds;
      if (int rc = check(sqzAllReduce(&done, &done, 1, sqzInt32, sqzMax, comm_, nullptr), "sqzAllReduce(done)"))
        return rc;
      if (done) break;
      const Call c = drawCall(o_.seed, index, n_);
      const auto t0 = Clock::now();
      if (int rc = step(c, index)) return rc;
      longestStep_ = std::max(longestStep_, secondsSince(t0));
      ++index;
      ++counts_[c.kind];
    }
    if (int rc = check(sqzBarrier(comm_), "final barrier")) return rc;
    if (int rc = check(sqzCommDestroy(comm_), "sqzCommDestroy")) return rc;
    comm_ = nullptr;
    sample();
    return report(index);
  }

 private:
  int check(sqzResult_t r, const char* what) {
    if (r == sqzSuccess) return 0;
    const double t = secondsSince(start_);
    std::printf("rank %d: %s failed after %.2f s: %s: %s\n", rank_, what, t, sqzGetErrorString(r),
                sqzGetLastError(comm_));
    std::fflush(stdout);
    if (comm_) sqzCommAbort(comm_);
    comm_ = nullptr;
    // A dead peer: the expected failure of a fault run.
    if (o_.fault && (r == sqzRemoteError || r == sqzTimeout)) return 42;
    return 10 + r;
  }

  int wrong(uint64_t index, const Call& c, const std::string& why) {
    std::printf("rank %d: call %llu (kind %d, count %zu, %s %s, spec '%s'): WRONG: %s\n", rank_,
                static_cast<unsigned long long>(index), c.kind, c.count, sqz::dataTypeName(c.type),
                sqz::redOpName(c.op), c.spec.c_str(), why.c_str());
    std::fflush(stdout);
    return 3;
  }

  // All ranks hold the same bytes.
  int sameEverywhere(const void* data, size_t bytes, uint64_t index, const Call& c) {
    uint64_t h = sqz::test::fnv1a(data, bytes);
    std::vector<uint64_t> all(n_);
    if (int rc = check(sqzAllGather(&h, all.data(), 1, sqzUint64, comm_, nullptr), "sqzAllGather(hash)")) return rc;
    for (int r = 0; r < n_; ++r)
      if (all[r] != all[0]) return wrong(index, c, "rank " + std::to_string(r) + " holds other bytes than rank 0");
    return 0;
  }

  bool checker(uint64_t index) const { return static_cast<int>(index % n_) == rank_; }

  int step(const Call& c, uint64_t index) {
    switch (c.kind) {
      case Call::kLossy: return lossy(c, index);
      case Call::kExact: return exact(c, index);
      case Call::kBroadcast: return broadcast(c, index);
      case Call::kAllGather: return allGather(c, index);
      case Call::kBarrier: return check(sqzBarrier(comm_), "sqzBarrier");
      case Call::kPolicy:
        policy_ = c.spec;
        return check(sqzCommSetCompression(comm_, c.spec.c_str()), "sqzCommSetCompression");
      case Call::kReform: return reform();
    }
    return 0;
  }

  int lossy(Call c, uint64_t index) {
    const size_t elem = sqz::dataTypeSize(c.type);
    const std::vector<float> mine = lossyInput(o_.seed, index, rank_, c);
    std::vector<unsigned char> send = toType(mine, c.type), recvBuf;
    void* recv = send.data();
    if (!c.inPlace) {
      recvBuf.resize(c.count * elem + 1);
      recv = recvBuf.data();
    }
    // A keyed state is fresh only once per communicator and (recvbuff, count).
    if (!c.freshState && !keysUsed_.insert({recv, c.count}).second) c.freshState = true;
    sqzState_t state = nullptr;
    if (c.freshState)
      if (int rc = check(sqzStateCreate(comm_, c.count, c.type, &state), "sqzStateCreate")) return rc;
    const char* spec = c.spec.empty() ? nullptr : c.spec.c_str();
    const sqzResult_t r = sqzAllReduceEx(send.data(), recv, c.count, c.type, c.op, spec, state, comm_, nullptr);
    if (state) sqzStateDestroy(state);
    if (int rc = check(r, "sqzAllReduceEx")) return rc;
    sqzCallInfo info;
    if (int rc = check(sqzGetCallInfo(comm_, &info), "sqzGetCallInfo")) return rc;
    if (int rc = sameEverywhere(recv, c.count * elem, index, c)) return rc;
    if (!checker(index)) return 0;
    sqz::test::Contributions y(n_);
    for (int q = 0; q < n_; ++q) y[q] = lossyInput(o_.seed, index, q, c);
    std::vector<float> out(c.count);
    for (size_t i = 0; i < c.count; ++i) out[i] = static_cast<float>(sqz::test::elementAsDouble(recv, c.type, i));
    const std::string why = sqz::test::checkLossy(y, out, sqz::test::LossyCall::of(info, c.type, c.op));
    ++checked_;
    lossyChecked_ += info.exact == 0;
    if (!why.empty()) return wrong(index, c, std::string(info.plan) + ": " + why);
    return 0;
  }

  int exact(const Call& c, uint64_t index) {
    const size_t bytes = c.count * sqz::dataTypeSize(c.type);
    std::vector<unsigned char> send = sqz::test::makeInput(c.type, c.op, rank_, c.count, index), recvBuf(bytes + 1);
    send.push_back(0);
    void* recv = c.inPlace ? send.data() : recvBuf.data();
    if (int rc = check(sqzAllReduce(send.data(), recv, c.count, c.type, c.op, comm_, nullptr), "sqzAllReduce"))
      return rc;
    if (int rc = sameEverywhere(recv, bytes, index, c)) return rc;
    if (!checker(index)) return 0;
    sqzCallInfo info;
    if (int rc = check(sqzGetCallInfo(comm_, &info), "sqzGetCallInfo")) return rc;
    // Integers and non-sums are always exact; float sums may have taken the policy's codec.
    const bool floatSum = (c.type == sqzFloat32 || c.type == sqzFloat16 || c.type == sqzBfloat16) &&
                          (c.op == sqzSum || c.op == sqzAvg);
    if (info.exact == 0 && !floatSum) return wrong(index, c, std::string("compressed: ") + info.plan);
    std::vector<std::vector<unsigned char>> inputs(n_);
    for (int q = 0; q < n_; ++q) inputs[q] = sqz::test::makeInput(c.type, c.op, q, c.count, index);
    std::string why;
    if (info.exact || !floatSum) {
      why = sqz::test::checkReduction(inputs, recv, c.type, c.op, c.count);
    } else {
      sqz::test::Contributions y(n_, std::vector<float>(c.count));
      std::vector<float> out(c.count);
      for (int q = 0; q < n_; ++q)
        for (size_t i = 0; i < c.count; ++i) y[q][i] = static_cast<float>(sqz::test::elementAsDouble(inputs[q].data(), c.type, i));
      for (size_t i = 0; i < c.count; ++i) out[i] = static_cast<float>(sqz::test::elementAsDouble(recv, c.type, i));
      // The policy's keyed state may carry a residual from an earlier call on this buffer.
      if (keysUsed_.insert({recv, c.count}).second)
        why = sqz::test::checkLossy(y, out, sqz::test::LossyCall::of(info, c.type, c.op));
    }
    ++checked_;
    if (!why.empty()) return wrong(index, c, why);
    return 0;
  }

  int broadcast(const Call& c, uint64_t index) {
    const size_t bytes = c.count * sqz::dataTypeSize(c.type);
    std::vector<unsigned char> mine = sqz::test::makeInput(c.type, sqzSum, rank_, c.count, index), out(bytes + 1);
    mine.push_back(0);
    void* recv = c.inPlace ? mine.data() : out.data();
    if (int rc = check(sqzBroadcast(mine.data(), recv, c.count, c.type, c.root, comm_, nullptr), "sqzBroadcast"))
      return rc;
    const std::vector<unsigned char> want = sqz::test::makeInput(c.type, sqzSum, c.root, c.count, index);
    if (bytes && std::memcmp(recv, want.data(), bytes) != 0) return wrong(index, c, "broadcast differs from the root's");
    ++checked_;
    return 0;
  }

  int allGather(const Call& c, uint64_t index) {
    const size_t bytes = c.count * sqz::dataTypeSize(c.type);
    const std::vector<unsigned char> mine = sqz::test::makeInput(c.type, sqzSum, rank_, c.count, index);
    std::vector<unsigned char> out(n_ * bytes + 1);
    if (int rc = check(sqzAllGather(bytes ? mine.data() : out.data(), out.data(), c.count, c.type, comm_, nullptr),
                       "sqzAllGather"))
      return rc;
    for (int q = 0; q < n_; ++q) {
      const std::vector<unsigned char> want = sqz::test::makeInput(c.type, sqzSum, q, c.count, index);
      if (bytes && std::memcmp(out.data() + q * bytes, want.data(), bytes) != 0)
        return wrong(index, c, "allgather block of rank " + std::to_string(q) + " differs");
    }
    ++checked_;
    return 0;
  }

  // Destroy the communicator and form a new one with a fresh unique id
  // that rank 0 makes and broadcasts over the old one; sample in between.
  int reform() {
    sqzUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (rank_ == 0)
      if (int rc = check(sqzGetUniqueId(&id), "sqzGetUniqueId")) return rc;
    if (int rc = check(sqzBroadcast(&id, &id, sizeof id, sqzUint8, 0, comm_, nullptr), "sqzBroadcast(id)")) return rc;
    if (int rc = check(sqzCommDestroy(comm_), "sqzCommDestroy")) return rc;
    comm_ = nullptr;
    keysUsed_.clear();
    sample();
    if (int rc = check(sqzCommInitRank(&comm_, n_, id, rank_), "sqzCommInitRank")) return rc;
    if (!policy_.empty())
      if (int rc = check(sqzCommSetCompression(comm_, policy_.c_str()), "sqzCommSetCompression")) return rc;
    ++reforms_;
    return 0;
  }

  void sample() {
    malloc_trim(0);
    samples_.push_back({secondsSince(start_), residentKiB(), openDescriptors()});
  }

  // Flat after the warm-up (the first third of the run): descriptors within
  // 2 of the first sample after it, resident memory within 10% + 32 MiB of
  // it, and no upward trend (the last third's median at most 16 MiB above
  // the middle third's).
  int report(uint64_t calls) {
    std::vector<Sample> after;
    for (const Sample& s : samples_)
      if (s.seconds >= o_.seconds / 3) after.push_back(s);
    std::string verdict = "flat";
    long base = -1, top = 0, median2 = 0, median3 = 0;
    int fdBase = -1, fdTop = 0;
    if (after.size() >= 3) {
      base = after.front().kib, fdBase = after.front().fds;
      for (const Sample& s : after) top = std::max(top, s.kib), fdTop = std::max(fdTop, s.fds);
      auto medianOf = [&](size_t a, size_t b) {
        std::vector<long> v;
        for (size_t i = a; i < b; ++i) v.push_back(after[i].kib);
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      const size_t third = after.size() / 3;
      median2 = medianOf(third, 2 * third > third ? 2 * third : third + 1);
      median3 = medianOf(2 * third, after.size());
      if (fdTop > fdBase + 2) verdict = "descriptors grew";
      if (top > base + base / 10 + 32 * 1024) verdict = "resident memory grew";
      if (median3 > median2 + 16 * 1024) verdict = "resident memory trends up";
    } else {
      verdict = "too few samples after the warm-up to judge";
    }
    if (!o_.judgeFlat) verdict = "not judged (" + verdict + ")";
    std::printf(
        "rank %d: %llu calls in %.0f s (%d lossy, %d exact, %d broadcast, %d allgather, %d barrier, %d policy, %d "
        "re-formed), %d results checked here (%d compressed), longest step %.2f s; RSS KiB after warm-up: first "
        "%ld, max %ld, medians %ld -> %ld; fds %d..%d (%zu samples): %s\n",
        rank_, static_cast<unsigned long long>(calls), secondsSince(start_), counts_[Call::kLossy],
        counts_[Call::kExact], counts_[Call::kBroadcast], counts_[Call::kAllGather], counts_[Call::kBarrier],
        counts_[Call::kPolicy], reforms_, checked_, lossyChecked_, longestStep_, base, top, median2, median3, fdBase,
        fdTop, after.size(), verdict.c_str());
    std::fflush(stdout);
    return verdict == "flat" || !o_.judgeFlat ? 0 : 4;
  }

  struct Sample {
    double seconds;
    long kib;
    int fds;
  };
  Options o_;
  sqzComm_t comm_ = nullptr;
  int rank_ = -1, n_ = 0;
  Clock::time_point start_;
  std::set<std::pair<void*, size_t>> keysUsed_;
  std::string policy_;
  std::vector<Sample> samples_;
  int counts_[7] = {0, 0, 0, 0, 0, 0, 0};
  int reforms_ = 0, checked_ = 0, lossyChecked_ = 0;
  double longestStep_ = 0;
};

// ---------------------------------------------------------------- driver

// A port that is free now, below the ephemeral range (as test_processes).
int freePort(std::mt19937_64& rng) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = 10000 + static_cast<int>(rng() % 22000);
    std::string cmd = "ss -Hltn sport = :" + std::to_string(port) + " 2>/dev/null | grep -q .";
    if (std::system(cmd.c_str()) != 0) return port;
  }
  return 10000 + static_cast<int>(rng() % 22000);
}

struct Job {
  std::vector<pid_t> pids;
  std::vector<int> codes;  // -1 while running
};

Job spawnRanks(const Options& o, double seconds, int port, const char* timeout, uint64_t seed) {
  Job job;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (int r = 0; r < o.ranks; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(o.ranks));
    env.push_back("SQZ_ROOT=127.0.0.1:" + std::to_string(port));
    env.push_back("SQZ_SECRET=soak-" + std::to_string(seed));
    env.push_back(std::string("SQZ_TIMEOUT=") + timeout);
    env.push_back("UCX_WARN_UNUSED_ENV_VARS=n");
    std::vector<std::string> args{self, "--rank", std::to_string(r), "--seconds", std::to_string(seconds),
                                  "--ranks", std::to_string(o.ranks), "--seed", std::to_string(seed)};
    if (o.fault) args.push_back("--fault");
    if (!o.judgeFlat) args.push_back("--no-flat-check");
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) {
      std::perror("posix_spawn");
      std::exit(1);
    }
    job.pids.push_back(pid);
  }
  job.codes.assign(o.ranks, -1);
  return job;
}

// Reaps what exits until all have, or until `until`; with `stopOnError`,
// kills the rest as soon as one exits with an error (they would wait
// SQZ_TIMEOUT for it; code 1001: stopped). True when all have exited.
bool reapUntil(Job& job, Clock::time_point until, std::vector<double>* exitAt, Clock::time_point t0,
               bool stopOnError = false) {
  for (;;) {
    bool running = false;
    for (size_t r = 0; r < job.pids.size(); ++r) {
      if (job.codes[r] != -1) continue;
      int status = 0;
      if (waitpid(job.pids[r], &status, WNOHANG) == job.pids[r]) {
        job.codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (exitAt) (*exitAt)[r] = secondsSince(t0);
      } else {
        running = true;
      }
    }
    if (!running) return true;
    if (stopOnError && std::any_of(job.codes.begin(), job.codes.end(), [](int c) { return c > 0; })) {
      for (size_t r = 0; r < job.pids.size(); ++r)
        if (job.codes[r] == -1) {
          kill(job.pids[r], SIGKILL);
          waitpid(job.pids[r], nullptr, 0);
          job.codes[r] = 1001;
        }
      return true;
    }
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Kills what still runs (code 1000: hung).
void killHung(Job& job) {
  for (size_t r = 0; r < job.pids.size(); ++r)
    if (job.codes[r] == -1) {
      kill(job.pids[r], SIGKILL);
      waitpid(job.pids[r], nullptr, 0);
      job.codes[r] = 1000;
      std::printf("driver: rank %zu hung; killed\n", r);
    }
}

int drive(const Options& o) {
  std::mt19937_64 rng(o.seed);
  std::printf("driver: %d ranks, %.0f s, seed %llu%s\n", o.ranks, o.seconds, static_cast<unsigned long long>(o.seed),
              o.fault ? ", fault: one rank killed" : "");
  std::fflush(stdout);
  int failures = 0;
  const char* timeout = o.fault ? "5" : "120";
  const auto t0 = Clock::now();
  Job job = spawnRanks(o, o.seconds, freePort(rng), timeout, o.seed);
  if (!o.fault) {
    // The longest step (a 16 Mi call and its check) is well under a minute.
    if (!reapUntil(job, plusSeconds(t0, o.seconds + 240), nullptr, t0, true)) killHung(job);
    for (int r = 0; r < o.ranks; ++r)
      if (job.codes[r] != 0) {
        std::printf("driver: rank %d exited with %d\n", r, job.codes[r]);
        ++failures;
      }
  } else {
    // Kill a random rank at a random moment between a quarter and three
    // quarters of the run; the others must fail within SQZ_TIMEOUT (5 s)
    // plus their longest local step (a 16 Mi call's check, ~10 s), none hang.
    const double killAt = o.seconds * (0.25 + 0.5 * std::uniform_real_distribution<double>(0, 1)(rng));
    const int victim = static_cast<int>(rng() % o.ranks);
    std::vector<double> exitAt(o.ranks, -1);
    reapUntil(job, plusSeconds(t0, killAt), &exitAt, t0);
    const double killedAt = secondsSince(t0);
    if (job.codes[victim] == -1) kill(job.pids[victim], SIGKILL);
    std::printf("driver: killed rank %d at %.2f s\n", victim, killedAt);
    std::fflush(stdout);
    const double bound = 5 + 25;
    if (!reapUntil(job, plusSeconds(Clock::now(), bound + 30), &exitAt, t0)) killHung(job);
    for (int r = 0; r < o.ranks; ++r) {
      if (r == victim) continue;
      const double after = exitAt[r] - killedAt;
      std::printf("driver: rank %d exited with %d, %.2f s after the kill\n", r, job.codes[r], after);
      if (job.codes[r] != 42 || after > bound) ++failures;
    }
    // A fresh communicator among new processes.
    Options fresh = o;
    fresh.fault = false;
    fresh.judgeFlat = false;
    const double freshSeconds = std::min(o.seconds, 15.0);
    const auto t1 = Clock::now();
    Job next = spawnRanks(fresh, freshSeconds, freePort(rng), "60", o.seed + 1);
    if (!reapUntil(next, plusSeconds(t1, freshSeconds + 240), nullptr, t1, true)) killHung(next);
    for (int r = 0; r < o.ranks; ++r)
      if (next.codes[r] != 0) {
        std::printf("driver: fresh rank %d exited with %d\n", r, next.codes[r]);
        ++failures;
      }
    std::printf("driver: a fresh communicator of %d new processes %s\n", o.ranks,
                failures ? "did not complete its run" : "formed and completed its run");
  }
  std::printf("driver: %s after %.0f s\n", failures ? "FAILED" : "passed", secondsSince(t0));
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.rank >= 0) return RankSoak(o).run();
  return drive(o);
}
