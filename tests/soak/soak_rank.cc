#include "soak/soak_rank.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "common/dtype.h"
#include "harness/lossy_check.h"
#include "harness/reference.h"
#include "soak/soak_load.h"
#include "sqz.h"

namespace sqz::soak {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

long residentKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

// The socket inodes among this process's open descriptors; *others counts
// the rest (less the directory iterator's own).
std::vector<unsigned long> openSockets(int* others = nullptr) {
  std::vector<unsigned long> sockets;
  int rest = -1;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    unsigned long inode = 0;
    if (!ec && std::sscanf(target.c_str(), "socket:[%lu]", &inode) == 1)
      sockets.push_back(inode);
    else
      ++rest;
  }
  if (others) *others = rest;
  return sockets;
}

// Local TCP port of each socket inode, from /proc/net/tcp and tcp6.
std::map<unsigned long, unsigned> tcpLocalPorts() {
  std::map<unsigned long, unsigned> ports;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(table);
    std::string line;
    std::getline(f, line);  // the column names
    while (std::getline(f, line)) {
      char local[64];
      unsigned long inode = 0;
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      if (std::sscanf(line.c_str(), " %*s %63s %*s %*s %*s %*s %*s %*s %*s %lu", local, &inode) != 2) continue;
      const char* colon = std::strrchr(local, ':');
      if (colon) ports[inode] = static_cast<unsigned>(std::strtoul(colon + 1, nullptr, 16));
    }
  }
  return ports;
}

// Open descriptors, less the sockets on local TCP port skipPort (0: none).
// The descriptors are listed before the port table is read: a connection
// accepted in between is then in the table (the rendezvous closes none
// while rank 0, one of its members, is here).
int openDescriptors(unsigned skipPort = 0) {
  int n = 0;
  const std::vector<unsigned long> sockets = openSockets(&n);
  const std::map<unsigned long, unsigned> ports = skipPort != 0 ? tcpLocalPorts() : std::map<unsigned long, unsigned>{};
  for (unsigned long inode : sockets) {
    const auto p = ports.find(inode);
    if (p == ports.end() || p->second != skipPort) ++n;
  }
  return n;
}

class RankSoak {
 public:
  explicit RankSoak(const RankOptions& o) : o_(o) {
    const char* t = std::getenv("SQZ_TIMEOUT");
    timeoutSeconds_ = t ? std::atof(t) : 0;
    // Scheduled samples: about 30 per run, at most a minute apart.
    samplePeriod_ = std::clamp(o.seconds / 30, 1.0, 60.0);
  }

  int run() {
    // A fixed mmap threshold (the dynamic one keeps freed large buffers in
    // the heap), and a trim before each sample: RSS follows what is live.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    start_ = Clock::now();
    if (int rc = call("sqzCommInitFromEnv", [&] { return sqzCommInitFromEnv(&comm_); })) return rc;
    sqzCommUserRank(comm_, &rank_);
    sqzCommCount(comm_, &n_);
    sample();
    uint64_t index = 0;
    for (;;) {
      // Every rank stops (or samples) after the same call: the first rank
      // that is out of time (or due for a sample) says so.
      int32_t flags[2] = {secondsSince(start_) >= o_.seconds, secondsSince(lastSample_) >= samplePeriod_};
      if (int rc = call("sqzAllReduce(flags)",
                        [&] { return sqzAllReduce(flags, flags, 2, sqzInt32, sqzMax, comm_, nullptr); }))
        return rc;
      if (flags[0]) break;
      if (flags[1]) {
        if (int rc = reform()) return rc;
        ++scheduledSamples_;
      }
      const Call c = drawCall(o_.seed, index, n_, o_.maxCount);
      const auto t0 = Clock::now();
      if (int rc = step(c, index)) return rc;
      longestStep_ = std::max(longestStep_, secondsSince(t0));
      ++index;
      ++counts_[c.kind];
    }
    if (int rc = call("final barrier", [&] { return sqzBarrier(comm_); })) return rc;
    if (int rc = call("sqzCommDestroy", [&] { return sqzCommDestroy(comm_); })) return rc;
    comm_ = nullptr;
    sample();
    return report(index);
  }

 private:
  // Runs one library call and judges its result.
  template <typename F>
  int call(const char* what, F f) {
    const auto t0 = Clock::now();
    const sqzResult_t r = f();
    if (r == sqzSuccess) return 0;
    const double took = secondsSince(t0);
    std::printf("rank %d: %s failed after %.2f s of the run (the call took %.2f s): %s: %s\n", rank_, what,
                secondsSince(start_), took, sqzGetErrorString(r), sqzGetLastError(comm_));
    std::fflush(stdout);
    if (comm_) sqzCommAbort(comm_);
    comm_ = nullptr;
    // A dead peer is the expected end of a fault run, if the call said so
    // within SQZ_TIMEOUT (plus a poll's slack).
    if (o_.fault && (r == sqzRemoteError || r == sqzTimeout))
      return took <= timeoutSeconds_ + 2 ? kRankPeerFailed : kRankPeerFailedLate;
    return kRankCallFailed + r;
  }

  int wrong(uint64_t index, const Call& c, const std::string& why) {
    std::printf("rank %d: call %llu (kind %d, count %zu, %s %s, spec '%s'): WRONG: %s\n", rank_,
                static_cast<unsigned long long>(index), c.kind, c.count, dataTypeName(c.type), redOpName(c.op),
                c.spec.c_str(), why.c_str());
    std::fflush(stdout);
    return kRankWrong;
  }

  // All ranks hold the same bytes.
  int sameEverywhere(const void* data, size_t bytes, uint64_t index, const Call& c) {
    uint64_t h = test::fnv1a(data, bytes);
    std::vector<uint64_t> all(n_);
    if (int rc = call("sqzAllGather(hash)",
                      [&] { return sqzAllGather(&h, all.data(), 1, sqzUint64, comm_, nullptr); }))
      return rc;
    for (int r = 0; r < n_; ++r)
      if (all[r] != all[0]) return wrong(index, c, "rank " + std::to_string(r) + " holds other bytes than rank 0");
    return 0;
  }

  // One rank checks each result (in turn): they hold the same bytes.
  bool checker(uint64_t index) const { return static_cast<int>(index % n_) == rank_; }

  int step(const Call& c, uint64_t index) {
    switch (c.kind) {
      case Call::kLossy: return lossy(c, index);
      case Call::kExact: return exact(c, index);
      case Call::kBroadcast: return broadcast(c, index);
      case Call::kAllGather: return allGather(c, index);
      case Call::kBarrier: return call("sqzBarrier", [&] { return sqzBarrier(comm_); });
      case Call::kPolicy:
        policy_ = c.spec;
        return call("sqzCommSetCompression", [&] { return sqzCommSetCompression(comm_, c.spec.c_str()); });
      case Call::kReform: return reform();
      case Call::kNumKinds: break;
    }
    return 0;
  }

  // A float sum or average under `spec` (null: the policy), with a fresh
  // explicit state or none; then the lossy check of what ran.
  int lossy(Call c, uint64_t index) {
    const size_t elem = dataTypeSize(c.type);
    const std::vector<float> mine = lossyInput(o_.seed, index, rank_, c);
    std::vector<unsigned char> send = toType(mine, c.type), recvBuf;
    void* recv = send.data();
    if (!c.inPlace) {
      recvBuf.resize(c.count * elem + 1);
      recv = recvBuf.data();
    }
    sqzState_t state = nullptr;
    if (c.freshState)
      if (int rc = call("sqzStateCreate", [&] { return sqzStateCreate(comm_, c.count, c.type, &state); })) return rc;
    const char* spec = c.spec.empty() ? nullptr : c.spec.c_str();
    int rc = call("sqzAllReduceEx", [&] {
      return sqzAllReduceEx(send.data(), recv, c.count, c.type, c.op, spec, state, comm_, nullptr);
    });
    if (state) sqzStateDestroy(state);
    if (rc) return rc;
    sqzCallInfo info;
    if (int rc2 = call("sqzGetCallInfo", [&] { return sqzGetCallInfo(comm_, &info); })) return rc2;
    if (int rc2 = sameEverywhere(recv, c.count * elem, index, c)) return rc2;
    if (!checker(index)) return 0;
    return checkFloats(index, c, info, recv, [&](int q) { return lossyInput(o_.seed, index, q, c); });
  }

  // The result of a float sum or average against the bound of what ran.
  template <typename InputOf>
  int checkFloats(uint64_t index, const Call& c, const sqzCallInfo& info, const void* recv, InputOf inputOf) {
    test::Contributions y(n_);
    for (int q = 0; q < n_; ++q) y[q] = inputOf(q);
    std::vector<float> out(c.count);
    for (size_t i = 0; i < c.count; ++i) out[i] = static_cast<float>(test::elementAsDouble(recv, c.type, i));
    if (o_.inject == "wrong") out = test::breakOutput(out, test::Breakage::Offset, n_);
    const std::string why = test::checkLossy(y, out, test::LossyCall::of(info, c.type, c.op));
    ++checked_;
    lossyChecked_ += info.exact == 0;
    if (!why.empty()) return wrong(index, c, std::string(info.plan) + ": " + why);
    return 0;
  }

  // sqzAllReduce of any type and op: exact, except a float sum or average
  // the policy may compress (checked as a lossy call then).
  int exact(const Call& c, uint64_t index) {
    const size_t bytes = c.count * dataTypeSize(c.type);
    std::vector<unsigned char> send = test::makeInput(c.type, c.op, rank_, c.count, index), recvBuf(bytes + 1);
    send.push_back(0);
    void* recv = c.inPlace ? send.data() : recvBuf.data();
    const bool floatSum = (c.type == sqzFloat32 || c.type == sqzFloat16 || c.type == sqzBfloat16) &&
                          (c.op == sqzSum || c.op == sqzAvg);
    // A call that names no state carries no residual (README): what a
    // compressed one reduced is its inputs alone.
    if (int rc = call("sqzAllReduce",
                      [&] { return sqzAllReduce(send.data(), recv, c.count, c.type, c.op, comm_, nullptr); }))
      return rc;
    if (int rc2 = sameEverywhere(recv, bytes, index, c)) return rc2;
    if (!checker(index)) return 0;
    sqzCallInfo info;
    if (int rc2 = call("sqzGetCallInfo", [&] { return sqzGetCallInfo(comm_, &info); })) return rc2;
    if (info.exact == 0 && !floatSum) return wrong(index, c, std::string("compressed: ") + info.plan);
    if (floatSum && info.exact == 0)
      return checkFloats(index, c, info, recv, [&](int q) {
        const std::vector<unsigned char> in = test::makeInput(c.type, c.op, q, c.count, index);
        std::vector<float> y(c.count);
        for (size_t i = 0; i < c.count; ++i) y[i] = static_cast<float>(test::elementAsDouble(in.data(), c.type, i));
        return y;
      });
    std::vector<std::vector<unsigned char>> inputs(n_);
    for (int q = 0; q < n_; ++q) inputs[q] = test::makeInput(c.type, c.op, q, c.count, index);
    const std::string why = test::checkReduction(inputs, recv, c.type, c.op, c.count);
    ++checked_;
    if (!why.empty()) return wrong(index, c, why);
    return 0;
  }

  int broadcast(const Call& c, uint64_t index) {
    const size_t bytes = c.count * dataTypeSize(c.type);
    std::vector<unsigned char> mine = test::makeInput(c.type, sqzSum, rank_, c.count, index), out(bytes + 1);
    mine.push_back(0);
    void* recv = c.inPlace ? mine.data() : out.data();
    if (int rc = call("sqzBroadcast",
                      [&] { return sqzBroadcast(mine.data(), recv, c.count, c.type, c.root, comm_, nullptr); }))
      return rc;
    const std::vector<unsigned char> want = test::makeInput(c.type, sqzSum, c.root, c.count, index);
    if (bytes && std::memcmp(recv, want.data(), bytes) != 0) return wrong(index, c, "broadcast differs from the root's");
    ++checked_;
    return 0;
  }

  int allGather(const Call& c, uint64_t index) {
    const size_t bytes = c.count * dataTypeSize(c.type);
    const std::vector<unsigned char> mine = test::makeInput(c.type, sqzSum, rank_, c.count, index);
    std::vector<unsigned char> out(n_ * bytes + 1);
    if (int rc = call("sqzAllGather", [&] {
          return sqzAllGather(bytes ? mine.data() : out.data(), out.data(), c.count, c.type, comm_, nullptr);
        }))
      return rc;
    for (int q = 0; q < n_; ++q) {
      const std::vector<unsigned char> want = test::makeInput(c.type, sqzSum, q, c.count, index);
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
    if (rank_ == 0) {
      const std::vector<unsigned long> listed = openSockets();
      const std::set<unsigned long> before(listed.begin(), listed.end());
      if (int rc = call("sqzGetUniqueId", [&] { return sqzGetUniqueId(&id); })) return rc;
      rendezvousPort_ = 0;
      const auto ports = tcpLocalPorts();
      for (unsigned long inode : openSockets())
        if (!before.count(inode) && ports.count(inode)) rendezvousPort_ = ports.at(inode);
    }
    if (int rc = call("sqzBroadcast(id)",
                      [&] { return sqzBroadcast(&id, &id, sizeof id, sqzUint8, 0, comm_, nullptr); }))
      return rc;
    if (int rc = call("sqzCommDestroy", [&] { return sqzCommDestroy(comm_); })) return rc;
    comm_ = nullptr;
    sample();
    if (int rc = call("sqzCommInitRank", [&] { return sqzCommInitRank(&comm_, n_, id, rank_); })) return rc;
    if (!policy_.empty())
      if (int rc = call("sqzCommSetCompression", [&] { return sqzCommSetCompression(comm_, policy_.c_str()); }))
        return rc;
    ++reforms_;
    return 0;
  }

  void sample() {
    // Test-only: the leaks the flatness check must catch.
    if (o_.inject == "leak") {
      const size_t bytes = 8u << 20;
      char* p = static_cast<char*>(std::malloc(bytes));
      std::memset(p, 1, bytes);
      leaked_.push_back(p);
    } else if (o_.inject == "fd") {
      for (int i = 0; i < 4; ++i) leakedFds_.push_back(open("/dev/null", O_RDONLY));
    }
    malloc_trim(0);
    lastSample_ = Clock::now();
    // Rank 0's sample leaves out the next communicator's rendezvous: its
    // listener and however many ranks have already connected to it (0 to
    // n-1 by timing, not a leak; it closes them once all have joined).
    samples_.push_back({secondsSince(start_), residentKiB(), openDescriptors(rendezvousPort_)});
    rendezvousPort_ = 0;
  }

  // Flat after the warm-up (the first third of the run): descriptors within
  // 2 of the first sample after it, resident memory within 8 MiB + 10% of
  // it, and no upward trend (the last third's median at most 4 MiB above
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
      median2 = medianOf(third, std::max(2 * third, third + 1));
      median3 = medianOf(2 * third, after.size());
      if (fdTop > fdBase + 2) verdict = "descriptors grew";
      if (top > base + base / 10 + 8 * 1024) verdict = "resident memory grew";
      if (median3 > median2 + 4 * 1024) verdict = "resident memory trends up";
    } else {
      verdict = "too few samples after the warm-up to judge";
    }
    if (!o_.judgeFlat) verdict = "not judged (" + verdict + ")";
    std::printf(
        "rank %d: %llu calls in %.0f s (%d lossy, %d exact, %d broadcast, %d allgather, %d barrier, %d policy, %d "
        "re-formed, %d of them to sample), %d results checked here (%d compressed), longest step %.2f s; RSS KiB "
        "after warm-up: first %ld, max %ld, medians %ld -> %ld; fds %d..%d (%zu samples): %s\n",
        rank_, static_cast<unsigned long long>(calls), secondsSince(start_), counts_[Call::kLossy],
        counts_[Call::kExact], counts_[Call::kBroadcast], counts_[Call::kAllGather], counts_[Call::kBarrier],
        counts_[Call::kPolicy], reforms_, scheduledSamples_, checked_, lossyChecked_, longestStep_, base, top, median2,
        median3, fdBase, fdTop, after.size(), verdict.c_str());
    if (std::getenv("SQZ_SOAK_SAMPLES")) {
      std::printf("rank %d samples (s, RSS KiB, fds):", rank_);
      for (const Sample& s : samples_) std::printf(" %.0f,%ld,%d", s.seconds, s.kib, s.fds);
      std::printf("\n");
    }
    std::fflush(stdout);
    if (verdict == "flat" || !o_.judgeFlat) return kRankDone;
    return after.size() < 3 ? kRankUnjudged : kRankNotFlat;
  }

  struct Sample {
    double seconds;
    long kib;
    int fds;
  };
  RankOptions o_;
  double timeoutSeconds_ = 0, samplePeriod_ = 1;
  sqzComm_t comm_ = nullptr;
  int rank_ = -1, n_ = 0;
  unsigned rendezvousPort_ = 0;  // rank 0: the TCP port of the pending re-formation's rendezvous
  Clock::time_point start_, lastSample_;
  std::string policy_;
  std::vector<Sample> samples_;
  int counts_[Call::kNumKinds] = {};
  int reforms_ = 0, scheduledSamples_ = 0, checked_ = 0, lossyChecked_ = 0;
  double longestStep_ = 0;
  std::vector<char*> leaked_;
  std::vector<int> leakedFds_;
};

}  // namespace

int runRank(const RankOptions& options) { return RankSoak(options).run(); }

}  // namespace sqz::soak
