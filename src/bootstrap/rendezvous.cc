#include "src/bootstrap/rendezvous.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace sqz {
namespace {

constexpr uint32_t kHelloMagic = 0x53515a48;  // "SQZH"
constexpr uint32_t kMaxBlob = 1u << 20;
// A connection must present a complete hello within this many seconds.
constexpr double kHelloSeconds = 10.0;

#pragma pack(push, 1)
struct Hello {
  uint32_t magic;
  uint8_t secret[16];
  int32_t rank;
  int32_t nranks;
  uint32_t blobBytes;
};
#pragma pack(pop)

// One accepted connection on its way to presenting a hello.
struct Incoming {
  Socket sock;
  std::string peer;
  std::vector<uint8_t> data;  // bytes received so far
  Hello hello{};
  bool haveHeader = false;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
};

std::string peerName(int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) return "?";
  return a.toString();
}

void putU32(std::vector<uint8_t>& out, uint32_t v) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

class Root {
 public:
  Root(Socket listener, const Secret& secret) : listener_(std::move(listener)), secret_(secret) {}

  void run() {
    Deadline overall = Deadline::fromTimeout();
    while (!overall.expired()) {
      std::vector<pollfd> fds;
      fds.push_back({listener_.fd(), POLLIN, 0});
      for (auto& c : incoming_) fds.push_back({c->sock.fd(), POLLIN, 0});
      int r = ::poll(fds.data(), fds.size(), 100);
      if (r < 0 && errno != EINTR) break;
      if (r > 0 && (fds[0].revents & POLLIN)) acceptOne();
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents) readFrom(fds[i].fd);
      }
      dropSlowStrangers();
      if (nranks_ > 0 && static_cast<int>(ready_.size()) == nranks_) {
        reply();
        return;
      }
      if (!error_.empty()) {
        replyError();
        return;
      }
    }
    SQZ_WARN("bootstrap root: gave up after SQZ_TIMEOUT with %zu of %d ranks", ready_.size(), nranks_);
  }

 private:
  void acceptOne() {
    int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    auto c = std::make_unique<Incoming>();
    c->sock = Socket(fd);
    c->peer = peerName(fd);
    incoming_.push_back(std::move(c));
  }

  void drop(Incoming& c, const char* why) {
    SQZ_WARN("bootstrap root: dropped a connection from %s: %s", c.peer.c_str(), why);
    c.sock = Socket();
  }

  void readFrom(int fd) {
    for (auto& cp : incoming_) {
      Incoming& c = *cp;
      if (c.sock.fd() != fd) continue;
      size_t want = c.haveHeader ? sizeof(Hello) + c.hello.blobBytes : sizeof(Hello);
      uint8_t buf[65536];
      size_t room = std::min(sizeof buf, want - c.data.size());
      ssize_t n = ::recv(fd, buf, room, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(c, "closed before presenting a complete hello");
        break;
      }
      if (n < 0) break;
      c.data.insert(c.data.end(), buf, buf + n);
      if (!c.haveHeader && c.data.size() == sizeof(Hello)) {
        std::memcpy(&c.hello, c.data.data(), sizeof(Hello));
        if (c.hello.magic != kHelloMagic) { drop(c, "not a sqz hello"); break; }
        if (!secretsEqual(c.hello.secret, secret_.data())) { drop(c, "wrong secret"); break; }
        if (c.hello.nranks <= 0 || c.hello.rank < 0 || c.hello.rank >= c.hello.nranks) {
          drop(c, "invalid rank or size");
          break;
        }
        if (c.hello.blobBytes > kMaxBlob) { drop(c, "oversized hello"); break; }
        c.haveHeader = true;
      }
      if (c.haveHeader && c.data.size() == sizeof(Hello) + c.hello.blobBytes) admit(cp);
      break;
    }
    incoming_.erase(std::remove_if(incoming_.begin(), incoming_.end(),
                                   [](const std::unique_ptr<Incoming>& c) { return !c || !c->sock.valid(); }),
                    incoming_.end());
  }

  void admit(std::unique_ptr<Incoming>& cp) {
    Incoming& c = *cp;
    if (nranks_ < 0) nranks_ = c.hello.nranks;
    if (c.hello.nranks != nranks_) {
      error_ = formatString("rank %d was started with nranks=%d but rank(s) before it with nranks=%d",
                            c.hello.rank, c.hello.nranks, nranks_);
    } else if (ready_.count(c.hello.rank)) {
      error_ = formatString("two processes both claim rank %d", c.hello.rank);
    }
    ready_[c.hello.rank] = std::move(cp);
  }

  void dropSlowStrangers() {
    auto now = std::chrono::steady_clock::now();
    for (auto& c : incoming_) {
      if (c && std::chrono::duration<double>(now - c->since).count() > kHelloSeconds)
        drop(*c, "no complete hello in time");
    }
    incoming_.erase(std::remove_if(incoming_.begin(), incoming_.end(),
                                   [](const std::unique_ptr<Incoming>& c) { return !c || !c->sock.valid(); }),
                    incoming_.end());
  }

  void reply() {
    std::vector<uint8_t> table;
    putU32(table, 0);
    for (auto& kv : ready_) {
      const Incoming& c = *kv.second;
      putU32(table, c.hello.blobBytes);
      table.insert(table.end(), c.data.begin() + sizeof(Hello), c.data.end());
    }
    Deadline deadline = Deadline::fromTimeout();
    for (auto& kv : ready_) {
      try {
        kv.second->sock.sendAll(table.data(), table.size(), deadline);
      } catch (const Error& e) {
        SQZ_WARN("bootstrap root: could not answer rank %d: %s", kv.first, e.what());
      }
    }
  }

  void replyError() {
    SQZ_WARN("bootstrap root: %s", error_.c_str());
    std::vector<uint8_t> msg;
    putU32(msg, 1);
    putU32(msg, static_cast<uint32_t>(error_.size()));
    msg.insert(msg.end(), error_.begin(), error_.end());
    Deadline deadline(5.0);
    for (auto& kv : ready_) {
      try {
        kv.second->sock.sendAll(msg.data(), msg.size(), deadline);
      } catch (const Error&) {
      }
    }
  }

  Socket listener_;
  Secret secret_;
  std::vector<std::unique_ptr<Incoming>> incoming_;
  std::map<int, std::unique_ptr<Incoming>> ready_;
  int nranks_ = -1;
  std::string error_;
};

uint32_t readU32(Socket& s, const Deadline& d) {
  uint32_t v = 0;
  s.recvAll(&v, 4, d);
  return v;
}

}  // namespace

SocketAddress startRendezvousRoot(const SocketAddress& listenAddr, const Secret& secret) {
  SocketAddress bound;
  Socket listener = listenOn(listenAddr, &bound);
  auto root = std::make_shared<Root>(std::move(listener), secret);
  std::thread([root] {
    try {
      root->run();
    } catch (const std::exception& e) {
      SQZ_WARN("bootstrap root failed: %s", e.what());
    }
  }).detach();
  return bound;
}

std::vector<Blob> rendezvous(const BootstrapId& id, int rank, int nranks, const Blob& mine,
                             const Deadline& deadline) {
  Socket s = connectWithRetry(id.root, deadline);
  Hello hello{};
  hello.magic = kHelloMagic;
  std::memcpy(hello.secret, id.secret.data(), 16);
  hello.rank = rank;
  hello.nranks = nranks;
  hello.blobBytes = static_cast<uint32_t>(mine.size());
  std::vector<uint8_t> msg(sizeof hello);
  std::memcpy(msg.data(), &hello, sizeof hello);
  msg.insert(msg.end(), mine.begin(), mine.end());
  s.sendAll(msg.data(), msg.size(), deadline);

  uint32_t status = readU32(s, deadline);
  if (status != 0) {
    uint32_t len = readU32(s, deadline);
    SQZ_REQUIRE(len <= kMaxBlob, sqzRemoteError, "bootstrap: malformed answer from the root");
    std::string text(len, '\0');
    s.recvAll(text.data(), len, deadline);
    fail(sqzInvalidUsage, "bootstrap: %s", text.c_str());
  }
  std::vector<Blob> all(nranks);
  for (int r = 0; r < nranks; ++r) {
    uint32_t len = readU32(s, deadline);
    SQZ_REQUIRE(len <= kMaxBlob, sqzRemoteError, "bootstrap: malformed answer from the root");
    all[r].resize(len);
    s.recvAll(all[r].data(), len, deadline);
  }
  return all;
}

}  // namespace sqz
