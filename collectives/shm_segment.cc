#include "collectives/shm_segment.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <random>
#include <vector>

#include "collectives/peers.h"
#include "collectives/tag_slots.h"
#include "common/env.h"
#include "common/error.h"
#include "common/log.h"

namespace sqz {

static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "shared-memory counters must be lock-free to work across processes");

struct ShmSegment::Layout {
  uint32_t magic;
  uint32_t nranks;
  // 0: none; else the first rank that failed, plus one, shifted by
  // kFailureRankShift, over the exchanges it had completed: a rank that
  // completed an exchange and then aborted does not fail it for the others.
  std::atomic<uint64_t> failure;
};

namespace {
constexpr int kFailureRankShift = 40;
constexpr uint64_t kFailureCallMask = (uint64_t{1} << kFailureRankShift) - 1;
}  // namespace

// A rank's slot for one parity: its header line, then its payload.
struct ShmSegment::Slot {
  std::atomic<uint64_t> published;  // the last call this slot holds
  // The CPU the rank ran on when it published (a waiter's hint: a rank
  // last seen on the waiter's own CPU cannot publish while the waiter spins).
  std::atomic<int32_t> cpu;
  uint64_t carried;
  CallHeader header;
  alignas(64) unsigned char payload[kPayloadMaxBytes];
};

namespace {

constexpr uint32_t kMagic = 0x53515a53;  // "SQZS"
constexpr size_t kLayoutBytes = 64;
static_assert(sizeof(ShmSegment::Layout) <= kLayoutBytes, "segment header overflows its line");

size_t slotsBytes(int n) { return kLayoutBytes + 2 * static_cast<size_t>(n) * sizeof(ShmSegment::Slot); }
size_t segmentBytes(int n) {
  return slotsBytes(n) + (static_cast<size_t>(n) + 1) * ShmSegment::largeSlotBytes(n);
}

std::atomic<int> refusedRank{-1};
std::atomic<uint64_t> spunPastSpinPolls{0};

// A mapping of the segment, unmapped unless released.
struct Mapping {
  void* base = nullptr;
  size_t bytes = 0;
  ~Mapping() {
    if (base) munmap(base, bytes);
  }
};

// Creates and maps a fresh segment; false (with why) when it cannot.
bool createSegment(const std::string& name, size_t bytes, int n, Mapping* m, std::string* why) {
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return *why = formatString("shm_open(%s): %s", name.c_str(), std::strerror(errno)), false;
  // Reserve the pages now: a full /dev/shm fails here, not as SIGBUS later.
  const int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  void* base = err == 0 ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  const int mapErr = errno;
  close(fd);
  if (err != 0) return *why = formatString("posix_fallocate(%zu bytes): %s", bytes, std::strerror(err)), false;
  if (base == MAP_FAILED) return *why = formatString("mmap: %s", std::strerror(mapErr)), false;
  m->base = base;
  m->bytes = bytes;
  auto* layout = new (base) ShmSegment::Layout{kMagic, static_cast<uint32_t>(n), {0}};
  (void)layout;
  return true;
}

// Maps the segment another rank created; false (with why) when it cannot.
bool openSegment(const std::string& name, size_t bytes, int n, Mapping* m, std::string* why) {
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) return *why = formatString("shm_open(%s): %s", name.c_str(), std::strerror(errno)), false;
  struct stat st{};
  void* base = MAP_FAILED;
  if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == bytes)
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) return *why = formatString("mapping %s (%zu bytes) failed", name.c_str(), bytes), false;
  m->base = base;
  m->bytes = bytes;
  const auto* layout = static_cast<const ShmSegment::Layout*>(base);
  if (layout->magic != kMagic || layout->nranks != static_cast<uint32_t>(n))
    return *why = formatString("%s is not this communicator's segment", name.c_str()), false;
  return true;
}

// Every rank's `mine` (fixed size), over the transport.
template <typename T>
std::vector<T> gatherOverTransport(Transport& t, uint32_t seq, const T& mine, const Deadline& deadline) {
  std::vector<T> all(t.size());
  all[t.rank()] = mine;
  std::vector<RequestId> reqs;
  postPeerExchange(t, Tag{seq, tags::kRound}, &mine, all.data(), sizeof(T), reqs);
  t.waitAll(reqs, deadline);
  return all;
}

}  // namespace

size_t ShmSegment::largeSlotBytes(int nranks) {
  const size_t share = kLargeAreaBudgetBytes / (static_cast<size_t>(nranks) + 1);
  return std::min(kLargeSlotCapBytes, share) / 64 * 64;
}

void ShmSegment::refuseNextJoinOfRank(int rank) { refusedRank = rank; }

uint64_t ShmSegment::pollsSpunPastSpinPolls() { return spunPastSpinPolls.load(); }

std::unique_ptr<ShmSegment> ShmSegment::join(Transport& transport, uint32_t seq, bool enabled, unsigned spinPolls,
                                             const Deadline& deadline) {
  const int n = transport.size(), me = transport.rank();
  const size_t bytes = segmentBytes(n);
  int refuse = me;
  const bool refused = refusedRank.compare_exchange_strong(refuse, -1);
  bool usable = enabled && !refused;
  std::string why = refused ? "refused for a test" : usable ? "" : "SQZ_SHM=0";

  // Round 1: the lowest rank creates the segment and sends its name ("" if none).
  struct Name {
    char text[48];
  } name{};
  Mapping mapping;
  if (me == 0 && usable) {
    static std::atomic<uint32_t> made{0};
    const std::string text = formatString("/sqz-%d-%u-%08x", static_cast<int>(getpid()), made++,
                                          static_cast<unsigned>(std::random_device{}()));
    usable = createSegment(text, bytes, n, &mapping, &why);
    if (usable) std::snprintf(name.text, sizeof name.text, "%s", text.c_str());
  }
  struct Unlink {  // the creator unlinks once every rank has mapped it, or on any failure
    const char* name;
    ~Unlink() {
      if (name[0] != '\0') shm_unlink(name);
    }
  } unlink{name.text};
  const std::vector<Name> names = gatherOverTransport(transport, seq, name, deadline);
  if (me != 0 && usable) {
    if (names[0].text[0] == '\0') usable = false, why = "rank 0 could not create it";
    else usable = openSegment(std::string(names[0].text, strnlen(names[0].text, sizeof names[0].text)), bytes, n,
                              &mapping, &why);
  }

  // Round 2: every rank says whether it mapped it; one that did not means none use it.
  const std::vector<uint8_t> ok = gatherOverTransport(transport, seq + 1, static_cast<uint8_t>(usable), deadline);
  for (int r = 0; r < n; ++r) {
    if (!ok[r]) {
      SQZ_INFO("shared memory: not used (rank %d: %s); calls go through the transport", r,
               r == me ? why.c_str() : "could not map it");
      return nullptr;
    }
  }
  std::unique_ptr<ShmSegment> s(new ShmSegment(me, n, mapping.base, bytes, spinPolls));
  mapping.base = nullptr;
  return s;
}

ShmSegment::ShmSegment(int rank, int size, void* base, size_t bytes, unsigned spinPolls)
    : rank_(rank),
      size_(size),
      base_(base),
      bytes_(bytes),
      spinPolls_(spinPolls),
      remoteSpinPolls_(std::max(spinPolls, static_cast<unsigned>(envUnsigned("SQZ_SHM_REMOTE_SPIN_POLLS",
                                                                              kRemoteSpinPolls, 0, 1u << 30)))) {}

ShmSegment::~ShmSegment() { munmap(base_, bytes_); }

ShmSegment::Slot& ShmSegment::slot(uint64_t call, int r) const {
  auto* slots = reinterpret_cast<Slot*>(static_cast<unsigned char*>(base_) + kLayoutBytes);
  return slots[(call & 1) * size_ + r];
}

void ShmSegment::exchange(Transport& transport, const CallHeader& mine, const void* payload, size_t payloadBytes,
                          const Deadline& deadline) {
  SQZ_REQUIRE(!broken_, sqzRemoteError, "the communicator's shared memory failed in an earlier call");
  SQZ_CHECK(payloadBytes <= kPayloadMaxBytes, "%zu bytes do not fit a shared-memory slot", payloadBytes);
  const uint64_t call = ++calls_;
  Slot& own = slot(call, rank_);
  own.header = mine;
  own.carried = payloadBytes;
  if (payloadBytes > 0) std::memcpy(own.payload, payload, payloadBytes);
  int cpu = sched_getcpu();
  own.cpu.store(cpu, std::memory_order_relaxed);
  own.published.store(call, std::memory_order_release);
  unsigned idle = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    const std::atomic<uint64_t>& published = slot(call, r).published;
    while (published.load(std::memory_order_acquire) != call) {
      failIfAFailedRankMissed(call);
      ++idle;
      if (idle % 64 == 0 && deadline.expired()) {
        markFailed();
        failWaiting(sqzTimeout, r, "did not arrive");
      }
      // Now and then: what the transport knows of the peers (a dead one,
      // where its endpoints have peer error handling).
      if (idle % 1024 == 0) {
        try {
          transport.checkPeers();
        } catch (...) {
          markFailed();
          throw;
        }
      }
      // As the transport's waits: spin a bounded while, then yield the
      // core, which a rank waited for may need. Past spinPolls_ (1 when
      // ranks outnumber cores) a wait still spins up to remoteSpinPolls_
      // while every missing rank last ran on another CPU: it may publish
      // any moment there, and a yield would hand this CPU to a rank that
      // waits for the same ones (perf/results/latency.md, round 8).
      if (idle >= spinPolls_ && (idle >= remoteSpinPolls_ || aMissingRankRanOn(call, cpu, r))) {
        sched_yield();
        cpu = sched_getcpu();
      } else if (idle >= spinPolls_) {
        spunPastSpinPolls.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  // A rank that gave up on this call (a rank arrived too late for it) fails
  // it here too, where it can still tell.
  failIfAFailedRankMissed(call);
  completed_ = call;
}

bool ShmSegment::aMissingRankRanOn(uint64_t call, int cpu, int from) const {
  for (int r = from; r < size_; ++r) {
    if (r == rank_ || slot(call, r).published.load(std::memory_order_acquire) == call) continue;
    // Its latest publication: call - 1 (every rank published it before this
    // rank's exchange of `call` began).
    if (slot(call - 1, r).cpu.load(std::memory_order_relaxed) == cpu) return true;
  }
  return false;
}

void ShmSegment::failIfAFailedRankMissed(uint64_t call) {
  const uint64_t failure = static_cast<const Layout*>(base_)->failure.load(std::memory_order_acquire);
  if (failure != 0 && (failure & kFailureCallMask) < (call & kFailureCallMask))
    failWaiting(sqzRemoteError, static_cast<int>(failure >> kFailureRankShift) - 1,
                "failed (aborted, or gave up waiting)");
}

void ShmSegment::failWaiting(sqzResult_t code, int r, const char* why) {
  broken_ = true;
  if (code == sqzTimeout)
    fail(code, "timed out after SQZ_TIMEOUT=%gs waiting in shared memory for rank %d's call: it %s",
         timeoutSecondsOrDefault(), r, why);
  fail(code, "rank %d %s: waiting in shared memory for its call", r, why);
}

unsigned char* ShmSegment::largeSlot(int r) const {
  return static_cast<unsigned char*>(base_) + slotsBytes(size_) + static_cast<size_t>(r) * largeSlotBytes(size_);
}
unsigned char* ShmSegment::resultArea() const { return largeSlot(size_); }

const CallHeader& ShmSegment::header(int r) const { return slot(calls_, r).header; }
size_t ShmSegment::carried(int r) const { return slot(calls_, r).carried; }
const unsigned char* ShmSegment::payload(int r) const { return slot(calls_, r).payload; }

void ShmSegment::markFailed() {
  broken_ = true;
  uint64_t none = 0;
  const uint64_t failure = (static_cast<uint64_t>(rank_ + 1) << kFailureRankShift) | (completed_ & kFailureCallMask);
  static_cast<Layout*>(base_)->failure.compare_exchange_strong(none, failure, std::memory_order_acq_rel);
}

}  // namespace sqz
