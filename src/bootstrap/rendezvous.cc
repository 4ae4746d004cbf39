#include "src/bootstrap/rendezvous.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace sqz {
namespace {

using Clock = std::chrono::steady_clock;

// A stranger must present a complete, authenticated hello within this time.
constexpr double kHelloSeconds = 5.0;
// Connections accepted per pass of the root's loop (the rest wait for the next).
constexpr int kAcceptsPerPass = 256;
// Drops logged one by one before they are only counted.
constexpr int kDropsLogged = 8;

std::string peerName(int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) return "?";
  return a.toString();
}

// How many unauthenticated connections the root keeps: a share of the
// descriptors this process may open, so that strangers alone never exhaust
// them, within [16, 1024].
size_t pendingCap() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1024;
  const long share = (static_cast<long>(lim.rlim_cur) - 64) / 4;
  return static_cast<size_t>(std::clamp(share, 16L, 1024L));
}

// One connection to the root, from accept to its answer.
struct Conn {
  enum Stage { kClientHello, kRankHello, kBlob, kReady };
  Socket sock;
  std::string peer;
  Stage stage = kClientHello;
  std::vector<uint8_t> in;  // the message being read
  size_t want = sizeof(ClientHello);
  HandshakeKeys keys;
  RankHello hello{};
  Blob blob;
  Clock::time_point since = Clock::now();
};
// Read on the caller's thread: the root's own thread must not call getenv
// while the program may be changing its environment (setenv is not
// thread-safe against getenv). A malformed SQZ_TIMEOUT fails every rank at
// creation, so the root then waits for nobody.
double rootTimeoutSeconds() {
  try {
    return timeoutSeconds();
  } catch (const Error&) {
    return 0;
  }
}

class Root {
 public:
  Root(Socket listener, const Secret& secret, int expectedNranks)
      : listener_(std::move(listener)), secret_(secret), nranks_(expectedNranks > 0 ? expectedNranks : -1),
        maxPending_(pendingCap()), overall_(rootTimeoutSeconds()) {
    // acceptSome() takes connections until the backlog is empty.
    ::fcntl(listener_.fd(), F_SETFL, ::fcntl(listener_.fd(), F_GETFL) | O_NONBLOCK);
  }

  void run() {
    while (!overall_.expired()) {
      pollOnce();
      dropSlowStrangers();
      if (!error_.empty() && !failed_) {
        failed_ = true;
        SQZ_WARN("bootstrap root: %s", error_.c_str());
        for (auto& [rank, c] : ready_) answerError(*c);
        for (auto& c : done_) answerError(*c);
      }
      if (failed_) {
        // Linger so that ranks still on their way get the error too.
        if (answered_.size() >= static_cast<size_t>(std::max(claimedMax_, 0))) break;
        continue;
      }
      if (nranks_ > 0 && static_cast<int>(ready_.size()) == nranks_) {
        reply();
        logDropSummary();
        return;
      }
    }
    if (!failed_)
      SQZ_WARN("bootstrap root: gave up after SQZ_TIMEOUT with %zu of %d ranks", ready_.size(), nranks_);
    logDropSummary();
  }

 private:
  void pollOnce() {
    std::vector<pollfd> fds;
    std::vector<Conn*> owners;
    const bool listening = Clock::now() >= quietUntil_;
    if (listening) {
      fds.push_back({listener_.fd(), POLLIN, 0});
      owners.push_back(nullptr);
    }
    for (auto* list : {&fresh_, &challenged_, &joining_}) {
      for (auto& c : *list) {
        fds.push_back({c->sock.fd(), POLLIN, 0});
        owners.push_back(c.get());
      }
    }
    const int timeoutMs = listening ? 100 : static_cast<int>(std::clamp<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(quietUntil_ - Clock::now()).count() + 1, 1, 100));
    const int r = ::poll(fds.data(), fds.size(), timeoutMs);
    if (r <= 0) return;
    // Connections first, then new ones: servicing only marks connections
    // dropped (sweep() frees them), so no pointer above dangles.
    bool acceptNow = false;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      if (!owners[i]) acceptNow = true;
      else service(*owners[i]);
    }
    sweep();
    if (acceptNow) acceptSome();
  }

  void acceptSome() {
    for (int i = 0; i < kAcceptsPerPass; ++i) {
      const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
        // Out of descriptors (or memory): free a stranger's and wait a
        // little before accepting again, rather than spin on a listener
        // that stays readable.
        evictOne("out of file descriptors");
        backOff(err);
        return;
      }
      backoffMs_ = 0;
      if (fresh_.size() + challenged_.size() >= maxPending_) evictOne("too many unauthenticated connections");
      auto c = std::make_unique<Conn>();
      c->sock = Socket(fd);
      c->peer = peerName(fd);
      fresh_.push_back(std::move(c));
      // A rank's hello is usually there already: answer it now, which also
      // moves it out of the first tier that evictOne() empties.
      service(*fresh_.back());
      // Dropped at once (junk): forget it now, without a sweep of every list.
      for (auto* list : {&fresh_, &challenged_})
        if (!list->empty() && !list->back()->sock.valid()) list->pop_back();
    }
  }

  // Frees one stranger's connection: the oldest that has not yet sent a
  // valid first hello (idle, or sending junk), else the oldest challenged
  // one. A rank sends its hello at once, so a flood of idle or junk
  // connections cannot push out a rank that is answering its challenge.
  void evictOne(const char* why) {
    for (auto* list : {&fresh_, &challenged_}) {
      while (!list->empty() && !list->front()->sock.valid()) list->pop_front();
      if (list->empty()) continue;
      drop(*list->front(), why);
      list->pop_front();
      return;
    }
  }

  void backOff(int err) {
    backoffMs_ = backoffMs_ ? std::min(backoffMs_ * 2, 100) : 5;
    quietUntil_ = Clock::now() + std::chrono::milliseconds(backoffMs_);
    if (!loggedBackoff_) {
      loggedBackoff_ = true;
      SQZ_WARN("bootstrap root: accept: %s; backing off", strerror(err));
    }
  }

  void drop(Conn& c, const char* why) {
    if (!c.sock.valid()) return;
    if (++drops_ <= kDropsLogged) SQZ_WARN("bootstrap root: dropped a connection from %s: %s", c.peer.c_str(), why);
    c.sock = Socket();
  }

  // Forgets connections that were dropped or answered.
  void sweep() {
    auto gone = [](const std::unique_ptr<Conn>& c) { return !c->sock.valid(); };
    fresh_.remove_if(gone);
    challenged_.remove_if(gone);
    joining_.remove_if(gone);
  }

  void dropSlowStrangers() {
    const auto now = Clock::now();
    for (auto* list : {&fresh_, &challenged_})
      for (auto& c : *list)
        if (std::chrono::duration<double>(now - c->since).count() > kHelloSeconds) drop(*c, "no hello in time");
    sweep();
  }

  // Moves c (owned by `from`) to the end of `to`; c stays where it is in memory.
  static void move(Conn& c, std::list<std::unique_ptr<Conn>>& from, std::list<std::unique_ptr<Conn>>& to) {
    for (auto it = from.rbegin(); it != from.rend(); ++it) {
      if (it->get() != &c) continue;
      to.push_back(std::move(*it));
      from.erase(std::next(it).base());
      return;
    }
  }

  void logDropSummary() {
    if (drops_ > kDropsLogged)
      SQZ_WARN("bootstrap root: dropped %d more connections that did not authenticate", drops_ - kDropsLogged);
  }

  // Reads what the connection has sent, and acts on each complete message.
  void service(Conn& c) {
    uint8_t buf[65536];
    for (int reads = 0; reads < 16 && c.sock.valid(); ++reads) {
      const size_t room = std::min(sizeof buf, c.want - c.in.size());
      const ssize_t n = room ? ::recv(c.sock.fd(), buf, room, MSG_DONTWAIT) : 0;
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop(c, "closed before presenting a complete hello");
        return;
      }
      if (n < 0) return;
      c.in.insert(c.in.end(), buf, buf + n);
      if (c.in.size() == c.want) advance(c);
      if (c.stage == Conn::kReady) return;
    }
  }

  void advance(Conn& c) {
    switch (c.stage) {
      case Conn::kClientHello: {
        ClientHello h;
        if (const char* why = checkClientHello(c.in.data(), c.in.size(), &h)) return drop(c, why);
        c.keys.secret = secret_;
        std::memcpy(c.keys.rankNonce.data(), h.rankNonce, 16);
        randomBytes(c.keys.rootNonce.data(), 16);
        const RootProof proof = makeRootProof(c.keys);
        // 64 bytes into a fresh connection's empty send buffer go at once.
        if (::send(c.sock.fd(), &proof, sizeof proof, MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof proof)
          return drop(c, "could not send the challenge");
        next(c, Conn::kRankHello, sizeof(RankHello));
        move(c, fresh_, challenged_);
        return;
      }
      case Conn::kRankHello: {
        if (const char* why = checkRankHello(c.in.data(), c.in.size(), c.keys, &c.hello)) return drop(c, why);
        // Authenticated: out of the strangers' cap and time limit.
        move(c, challenged_, joining_);
        next(c, Conn::kBlob, c.hello.blobBytes);
        if (c.want == 0) advance(c);
        return;
      }
      case Conn::kBlob:
        if (const char* why = checkBlob(c.hello, c.in.data(), c.in.size())) return drop(c, why);
        c.blob = std::move(c.in);
        c.stage = Conn::kReady;
        admit(c);
        return;
      case Conn::kReady: return;
    }
  }

  static void next(Conn& c, Conn::Stage stage, size_t want) {
    c.stage = stage;
    c.in.clear();
    c.want = want;
  }

  // An authenticated rank with its blob: join it to the group, or tell it
  // why it cannot join. Never frees `c` (its caller still holds it).
  void admit(Conn& c) {
    std::unique_ptr<Conn> owned;
    for (auto it = joining_.rbegin(); it != joining_.rend(); ++it) {
      if (it->get() != &c) continue;
      owned = std::move(*it);
      joining_.erase(std::next(it).base());
      break;
    }
    const RankHello& h = c.hello;
    claimedMax_ = std::max(claimedMax_, h.nranks);
    if (failed_) {
      answerError(c);
      done_.push_back(std::move(owned));
      return;
    }
    if (h.rank == 0 && nranks_ < 0) nranks_ = h.nranks;
    std::unique_ptr<Conn>& slot = ready_[h.rank];
    if (slot) {
      // The same process again (its first connection broke after it was
      // admitted) sends the same blob; anything else is a second process.
      if (std::memcmp(slot->hello.blobDigest, h.blobDigest, 32) != 0 || slot->hello.nranks != h.nranks)
        error_ = formatString("two processes both claim rank %d", h.rank);
      done_.push_back(std::move(slot));  // told the error with the others, or replaced
    }
    slot = std::move(owned);
    if (error_.empty()) checkSizes();
  }

  // Every authenticated rank must claim the same nranks: rank 0's (from its
  // hello or its environment) once known, else the first arrival's.
  void checkSizes() {
    const int ref = nranks_ > 0 ? 0 : ready_.begin()->first;
    const int want = nranks_ > 0 ? nranks_ : ready_.begin()->second->hello.nranks;
    for (auto& [rank, c] : ready_) {
      if (c->hello.nranks == want) continue;
      error_ = formatString("rank %d was started with nranks=%d but rank %d with nranks=%d", rank, c->hello.nranks,
                            ref, want);
      return;
    }
  }

  void send(Conn& c, uint32_t status, const std::vector<uint8_t>& body, const Deadline& deadline) {
    const RootReply r = makeRootReply(c.keys, status, body);
    c.sock.sendAll(&r, sizeof r, deadline);
    if (!body.empty()) c.sock.sendAll(body.data(), body.size(), deadline);
  }

  void answerError(Conn& c) {
    if (!c.sock.valid()) return;
    answered_.insert(c.hello.rank);
    std::vector<uint8_t> text(error_.begin(), error_.end());
    if (text.size() > kMaxErrorBytes) text.resize(kMaxErrorBytes);
    try {
      send(c, kReplyError, text, Deadline(5.0));
    } catch (const Error&) {
    }
    c.sock = Socket();
  }

  void reply() {
    std::vector<const Blob*> blobs;
    for (auto& [rank, c] : ready_) blobs.push_back(&c->blob);
    const std::vector<uint8_t> table = packBlobTable(blobs);
    const Deadline deadline = Deadline::fromTimeout();
    for (auto& [rank, c] : ready_) {
      try {
        send(*c, kReplyOk, table, deadline);
      } catch (const Error& e) {
        SQZ_WARN("bootstrap root: could not answer rank %d: %s", rank, e.what());
      }
    }
  }

  Socket listener_;
  Secret secret_;
  int nranks_;          // the group's size, once known (-1 before)
  size_t maxPending_;
  Deadline overall_;  // the root gives up on the group after SQZ_TIMEOUT
  // Not yet authenticated, oldest first: no valid first hello yet, and
  // challenged (the root's proof sent, the rank's hello awaited).
  std::list<std::unique_ptr<Conn>> fresh_, challenged_;
  std::list<std::unique_ptr<Conn>> joining_;  // authenticated, blob on its way
  std::map<int, std::unique_ptr<Conn>> ready_;
  std::vector<std::unique_ptr<Conn>> done_;   // authenticated, answered or displaced
  std::string error_;
  bool failed_ = false;
  std::set<int> answered_;  // ranks told the error
  int claimedMax_ = 0;      // the largest nranks an authenticated rank claimed
  int drops_ = 0;
  int backoffMs_ = 0;
  bool loggedBackoff_ = false;
  Clock::time_point quietUntil_{};
};

// The root closed the connection before answering it: it may have dropped
// it as one of too many strangers (the rank connects again).
struct ClosedBeforeAnswer {};

void recvOrClosed(Socket& s, void* buf, size_t n, const Deadline& d) {
  try {
    s.recvAll(buf, n, d);
  } catch (const Error& e) {
    if (e.code() == sqzRemoteError) throw ClosedBeforeAnswer{};
    throw;
  }
}

std::vector<Blob> joinOnce(Socket& s, const BootstrapId& id, int rank, int nranks, const Blob& mine,
                           const Deadline& deadline) {
  HandshakeKeys keys;
  keys.secret = id.secret;
  randomBytes(keys.rankNonce.data(), 16);
  const ClientHello hello = makeClientHello(keys.rankNonce);
  s.sendAll(&hello, sizeof hello, deadline);

  uint8_t proofBytes[sizeof(RootProof)];
  recvOrClosed(s, proofBytes, sizeof proofBytes, deadline);
  RootProof proof;
  if (const char* why = checkRootProof(proofBytes, sizeof proofBytes, id.secret, keys.rankNonce, &proof))
    fail(sqzInvalidUsage,
         "bootstrap: the rendezvous at %s failed to authenticate (%s): a different job, or a different SQZ_SECRET",
         id.root.toString().c_str(), why);
  std::memcpy(keys.rootNonce.data(), proof.rootNonce, 16);

  const RankHello mineHello = makeRankHello(keys, rank, nranks, mine);
  s.sendAll(&mineHello, sizeof mineHello, deadline);
  if (!mine.empty()) s.sendAll(mine.data(), mine.size(), deadline);

  uint8_t headerBytes[sizeof(RootReply)];
  recvOrClosed(s, headerBytes, sizeof headerBytes, deadline);
  RootReply reply;
  if (const char* why = checkRootReplyHeader(headerBytes, sizeof headerBytes, nranks, &reply))
    fail(sqzRemoteError, "bootstrap: malformed answer from the root: %s", why);
  std::vector<uint8_t> body(static_cast<size_t>(reply.bodyBytes));
  s.recvAll(body.data(), body.size(), deadline);
  if (const char* why = checkRootReplyBody(reply, keys, body.data(), body.size()))
    fail(sqzRemoteError, "bootstrap: %s", why);
  if (reply.status == kReplyError)
    fail(sqzInvalidUsage, "bootstrap: %s", std::string(body.begin(), body.end()).c_str());
  std::vector<Blob> all;
  SQZ_REQUIRE(unpackBlobTable(body.data(), body.size(), nranks, &all), sqzRemoteError,
              "bootstrap: malformed answer from the root");
  return all;
}

}  // namespace

SocketAddress startRendezvousRoot(const SocketAddress& listenAddr, const Secret& secret, int expectedNranks) {
  SocketAddress bound;
  Socket listener = listenOn(listenAddr, &bound);
  auto root = std::make_shared<Root>(std::move(listener), secret, expectedNranks);
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
  int delayMs = 5;
  for (;;) {
    Socket s = connectWithRetry(id.root, deadline);
    try {
      return joinOnce(s, id, rank, nranks, mine, deadline);
    } catch (const ClosedBeforeAnswer&) {
      if (deadline.expired())
        fail(sqzTimeout, "bootstrap: the root at %s kept closing the connection (SQZ_TIMEOUT=%gs)",
             id.root.toString().c_str(), timeoutSeconds());
      SQZ_INFO("bootstrap: the root at %s closed the connection before answering; connecting again",
               id.root.toString().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));
      delayMs = std::min(delayMs * 2, 100);
    }
  }
}

}  // namespace sqz
