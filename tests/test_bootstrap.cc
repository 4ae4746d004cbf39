// The rendezvous as an attacker or a faulty cluster meets it: the secret
// never travels, a recorded hello is not accepted again, a rank never talks
// to a root that cannot prove the secret, ranks that disagree on nranks all
// get that error (and rank 0 no half-formed group), connect() keeps to the
// deadline, and a root out of file descriptors backs off instead of
// spinning. Ranks are threads calling rendezvous() directly.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "harness/rank_threads.h"
#include "src/bootstrap/rendezvous.h"
#include "src/bootstrap/socket.h"
#include "src/bootstrap/unique_id.h"

namespace sqz::test {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

SocketAddress loopback(int port = 0) { return resolveAddress("127.0.0.1", port); }

Blob blobOf(const std::string& s) { return Blob(s.begin(), s.end()); }

bool contains(const std::string& haystack, const void* needle, size_t n) {
  return haystack.find(std::string(static_cast<const char*>(needle), n)) != std::string::npos;
}

// Reads what arrives on fd for `seconds` (or until it closes).
std::string drain(int fd, double seconds) {
  std::string got;
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  char buf[4096];
  while (Clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// A TCP proxy on loopback in front of `target` that records the bytes of
// every connection in both directions (a wire tap, as on a shared network).
class RecordingProxy {
 public:
  explicit RecordingProxy(const SocketAddress& target) : target_(target) {
    listener_ = listenOn(loopback(), &address_);
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~RecordingProxy() {
    stop_ = true;
    thread_.join();
    for (auto& t : pumps_) t.join();
  }
  const SocketAddress& address() const { return address_; }
  // Everything that went towards the target / came back, all connections.
  std::string upstream() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (auto& s : up_) all += s;
    return all;
  }
  std::string downstream() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (auto& s : down_) all += s;
    return all;
  }
  // The longest client-to-target transcript of one connection.
  std::string longestUpstream() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string best;
    for (auto& s : up_)
      if (s.size() > best.size()) best = s;
    return best;
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listener_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      Socket client(::accept(listener_.fd(), nullptr, nullptr));
      if (!client.valid()) continue;
      size_t index;
      {
        std::lock_guard<std::mutex> lock(mu_);
        index = up_.size();
        up_.emplace_back();
        down_.emplace_back();
      }
      pumps_.emplace_back([this, index, c = std::move(client)]() mutable { pump(std::move(c), index); });
    }
  }

  void pump(Socket client, size_t index) {
    Socket server;
    try {
      server = connectWithRetry(target_, Deadline(5));
    } catch (const Error&) {
      return;
    }
    char buf[65536];
    while (!stop_) {
      pollfd p[2] = {{client.fd(), POLLIN, 0}, {server.fd(), POLLIN, 0}};
      if (::poll(p, 2, 20) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!p[i].revents) continue;
        Socket& from = i == 0 ? client : server;
        Socket& to = i == 0 ? server : client;
        const ssize_t n = ::recv(from.fd(), buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) return;
        {
          std::lock_guard<std::mutex> lock(mu_);
          (i == 0 ? up_ : down_)[index].append(buf, static_cast<size_t>(n));
        }
        try {
          to.sendAll(buf, static_cast<size_t>(n), Deadline(5));
        } catch (const Error&) {
          return;
        }
      }
    }
  }

  SocketAddress target_, address_;
  Socket listener_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> pumps_;
  std::mutex mu_;
  std::vector<std::string> up_, down_;
};

// The outcome of one rank's rendezvous.
struct Joined {
  sqzResult_t code = sqzInternalError;
  std::string message;
  std::vector<Blob> blobs;
  double seconds = 0;
};

Joined join(const BootstrapId& id, int rank, int nranks, const Blob& blob, double seconds) {
  Joined j;
  const auto start = Clock::now();
  try {
    j.blobs = rendezvous(id, rank, nranks, blob, Deadline(seconds));
    j.code = sqzSuccess;
  } catch (const Error& e) {
    j.code = e.code();
    j.message = e.what();
  }
  j.seconds = secondsSince(start);
  return j;
}

// Neither the secret nor anything derived from it by a fixed rule crosses
// the wire: a tap on a rank's connection sees no secret bytes.
TEST(Bootstrap, SecretNeverTravels) {
  const Secret secret = randomSecret();
  const SocketAddress root = startRendezvousRoot(loopback(), secret);
  RecordingProxy tap(root);
  Joined r0, r1;
  std::thread t1([&] { r1 = join(BootstrapId{tap.address(), secret}, 1, 2, blobOf("rank one"), 10); });
  r0 = join(BootstrapId{root, secret}, 0, 2, blobOf("rank zero"), 10);
  t1.join();
  ASSERT_EQ(r0.code, sqzSuccess) << r0.message;
  ASSERT_EQ(r1.code, sqzSuccess) << r1.message;
  EXPECT_EQ(r1.blobs, r0.blobs);
  const std::string wire = tap.upstream() + tap.downstream();
  EXPECT_FALSE(wire.empty());
  EXPECT_FALSE(contains(wire, secret.data(), secret.size())) << "the secret travelled in the clear";
}

// A hello recorded on the wire of an earlier job that used the same secret
// (the same SQZ_SECRET, say) and replayed byte for byte to a new root is
// refused: rank 0 forms its group with the real rank 1, not the recording.
TEST(Bootstrap, ReplayedHelloIsRefused) {
  const Secret secret = randomSecret();
  const Blob oldBlob = blobOf("rank one of the earlier job"), newBlob = blobOf("rank one of this job");
  const Blob zero = blobOf("rank zero");
  std::string recorded;
  {
    const SocketAddress earlier = startRendezvousRoot(loopback(), secret);
    RecordingProxy tap(earlier);
    Joined r1;
    std::thread t1([&] { r1 = join(BootstrapId{tap.address(), secret}, 1, 2, oldBlob, 10); });
    Joined r0 = join(BootstrapId{earlier, secret}, 0, 2, zero, 10);
    t1.join();
    ASSERT_EQ(r0.code, sqzSuccess) << r0.message;
    ASSERT_EQ(r1.code, sqzSuccess) << r1.message;
    recorded = tap.longestUpstream();
  }
  ASSERT_FALSE(recorded.empty());

  const SocketAddress root = startRendezvousRoot(loopback(), secret);
  const BootstrapId id{root, secret};
  Joined r0;
  std::thread t0([&] { r0 = join(id, 0, 2, zero, 8); });
  Socket replay = connectWithRetry(root, Deadline(5));
  replay.sendAll(recorded.data(), recorded.size(), Deadline(5));
  const std::string answer = drain(replay.fd(), 1.0);
  Joined r1 = join(id, 1, 2, newBlob, 8);
  t0.join();
  ASSERT_EQ(r0.code, sqzSuccess) << r0.message;
  ASSERT_EQ(r0.blobs.size(), 2u);
  EXPECT_EQ(r0.blobs[1], newBlob) << "rank 0 formed its group with the replayed hello";
  EXPECT_EQ(r1.code, sqzSuccess) << r1.message;
  EXPECT_FALSE(contains(answer, zero.data(), zero.size())) << "the replay was answered with the group's blobs";
}

// A rank checks the root before it sends anything of its own: a listener
// that cannot prove the secret (a squatter on the port) learns neither the
// secret nor the rank's blob, and the rank fails rather than joins.
TEST(Bootstrap, RankRefusesARootThatCannotProveTheSecret) {
  const Secret secret = randomSecret();
  const Blob blob = blobOf("this rank's UCX address");
  SocketAddress address;
  Socket listener = listenOn(loopback(), &address);
  std::string received;
  std::thread squatter([&] {
    pollfd p{listener.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;
    Socket c(::accept(listener.fd(), nullptr, nullptr));
    received = drain(c.fd(), 0.3);
    std::vector<uint8_t> junk(64);
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 37 + 11);
    ::send(c.fd(), junk.data(), junk.size(), MSG_NOSIGNAL);
    received += drain(c.fd(), 0.7);
  });
  Joined j = join(BootstrapId{address, secret}, 0, 1, blob, 3);
  squatter.join();
  EXPECT_NE(j.code, sqzSuccess);
  EXPECT_FALSE(contains(received, secret.data(), secret.size())) << "the rank sent its secret to a stranger";
  EXPECT_FALSE(contains(received, blob.data(), blob.size())) << "the rank sent its blob to an unproven root";
}

// A root on loopback with a fresh secret, and the id that joins it.
BootstrapId freshRendezvous() {
  const Secret secret = randomSecret();
  return BootstrapId{startRendezvousRoot(loopback(), secret), secret};
}

// Ranks that disagree on nranks all get that error, also the one that
// arrives after the disagreement was found (not a timeout).
TEST(Bootstrap, DisagreeingNranksIsTheRealErrorOnEveryRank) {
  ScopedEnv timeout("SQZ_TIMEOUT", "6");
  const BootstrapId id = freshRendezvous();
  Joined r0, r2;
  std::thread t0([&] { r0 = join(id, 0, 3, blobOf("zero"), 6); });
  std::thread t2([&] { r2 = join(id, 2, 4, blobOf("two"), 6); });
  t0.join();
  t2.join();
  const Joined late = join(id, 1, 3, blobOf("one"), 6);
  for (const Joined* j : std::vector<const Joined*>{&r0, &r2, &late}) {
    EXPECT_EQ(j->code, sqzInvalidUsage) << j->message;
    EXPECT_NE(j->message.find("nranks"), std::string::npos) << j->message;
  }
  EXPECT_LT(late.seconds, 3.0) << late.message;
}

// Rank 0 is never handed a group in which another rank disagrees with it.
TEST(Bootstrap, RankZeroIsNeverHandedAHalfFormedGroup) {
  ScopedEnv timeout("SQZ_TIMEOUT", "5");
  const BootstrapId id = freshRendezvous();
  Joined r0, r1;
  std::thread t0([&] { r0 = join(id, 0, 2, blobOf("zero"), 5); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // rank 0 is in first
  std::thread t1([&] { r1 = join(id, 1, 3, blobOf("one"), 5); });
  t0.join();
  t1.join();
  EXPECT_EQ(r0.code, sqzInvalidUsage) << "rank 0 got a group of " << r0.blobs.size() << ": " << r0.message;
  EXPECT_EQ(r1.code, sqzInvalidUsage) << r1.message;
  EXPECT_NE(r0.message.find("nranks"), std::string::npos) << r0.message;
}

// A connect whose SYN goes unanswered (here: a listener whose accept queue
// is full, so the kernel drops it) ends at the deadline, not after the
// kernel's ~127 s of SYN retries.
TEST(Bootstrap, ConnectHonoursTheDeadline) {
  Socket listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.valid());
  SocketAddress address = loopback();
  ASSERT_EQ(::bind(listener.fd(), reinterpret_cast<const sockaddr*>(&address.storage), address.length), 0);
  ASSERT_EQ(::listen(listener.fd(), 0), 0);
  address.length = sizeof address.storage;
  ::getsockname(listener.fd(), reinterpret_cast<sockaddr*>(&address.storage), &address.length);
  // Fill the accept queue (never accepted).
  std::vector<Socket> queued;
  for (int i = 0; i < 4; ++i) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&address.storage), address.length);
    queued.push_back(std::move(s));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = Clock::now();
  sqzResult_t code = sqzSuccess;
  try {
    connectWithRetry(address, Deadline(1.5));
  } catch (const Error& e) {
    code = e.code();
  }
  const double seconds = secondsSince(start);
  EXPECT_EQ(code, sqzTimeout);
  EXPECT_LT(seconds, 4.0);
}

int openDescriptors() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

double cpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// When the root's process runs out of file descriptors while strangers
// queue at the port, the root backs off (it does not spin on a listener
// that stays readable), and once descriptors are back the ranks form.
TEST(Bootstrap, RootBacksOffWhenDescriptorsRunOut) {
  sqzUniqueId uid;
  ASSERT_EQ(sqzGetUniqueId(&uid), sqzSuccess);
  const BootstrapId id = BootstrapId::unpack(uid);
  // This process (the root's) keeps only a few spare descriptors...
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(openDescriptors() + 4);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  // ... while 300 idle strangers queue from another process (its own limit).
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setrlimit(RLIMIT_NOFILE, &saved);
    static int fds[300];
    for (int& fd : fds) {
      fd = ::socket(id.root.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(fd, reinterpret_cast<const sockaddr*>(&id.root.storage), id.root.length);
    }
    ::sleep(60);
    _exit(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double cpu0 = cpuSeconds();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double cpu = cpuSeconds() - cpu0;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_LT(cpu, 0.3) << "the root spun while out of file descriptors";
  runRanksWithId(2, uid, [&](int rank, sqzComm_t& comm) {
    int32_t v = rank + 1;
    ASSERT_EQ(sqzAllReduce(&v, &v, 1, sqzInt32, sqzSum, comm, nullptr), sqzSuccess);
    EXPECT_EQ(v, 3);
  });
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace sqz::test
