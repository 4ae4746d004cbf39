#include "src/bootstrap/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/log.h"

namespace sqz {

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

namespace {

void waitFor(int fd, short events, const Deadline& deadline, const char* what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ms = deadline.remainingMs();
    int r = ::poll(&p, 1, ms);
    if (r > 0) return;
    if (r == 0) fail(sqzTimeout, "bootstrap: timed out %s (SQZ_TIMEOUT=%gs)", what, timeoutSeconds());
    if (errno != EINTR) fail(sqzSystemError, "bootstrap: poll: %s", strerror(errno));
  }
}

}  // namespace

void Socket::sendAll(const void* buf, size_t n, const Deadline& deadline) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      waitFor(fd_, POLLOUT, deadline, "sending");
    } else {
      fail(sqzRemoteError, "bootstrap: send failed: %s", strerror(errno));
    }
  }
}

void Socket::recvAll(void* buf, size_t n, const Deadline& deadline) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::recv(fd_, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
    } else if (r == 0) {
      fail(sqzRemoteError, "bootstrap: connection closed by peer");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      waitFor(fd_, POLLIN, deadline, "receiving");
    } else {
      fail(sqzRemoteError, "bootstrap: recv failed: %s", strerror(errno));
    }
  }
}

std::string SocketAddress::toString() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (storage.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (storage.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "?";
}

int SocketAddress::port() const {
  if (storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

void SocketAddress::setPort(int port) {
  if (storage.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(static_cast<uint16_t>(port));
  if (storage.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(static_cast<uint16_t>(port));
}

namespace {

bool matchesIfname(const char* name, const std::string& spec) {
  // Comma-separated prefixes; a leading '=' asks for an exact name (NCCL's syntax).
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    if (!item.empty()) {
      if (item[0] == '=') {
        if (item.substr(1) == name) return true;
      } else if (std::strncmp(name, item.c_str(), item.size()) == 0) {
        return true;
      }
    }
    start = end + 1;
  }
  return false;
}

}  // namespace

SocketAddress pickListenAddress() {
  std::string spec = envString("SQZ_SOCKET_IFNAME");
  ifaddrs* list = nullptr;
  SocketAddress chosen, loopback;
  if (getifaddrs(&list) == 0) {
    for (int pass = 0; pass < 2 && chosen.length == 0; ++pass) {
      int family = pass == 0 ? AF_INET : AF_INET6;  // prefer IPv4
      for (ifaddrs* it = list; it; it = it->ifa_next) {
        if (!it->ifa_addr || it->ifa_addr->sa_family != family) continue;
        if (!(it->ifa_flags & IFF_UP)) continue;
        if (family == AF_INET6) {
          auto* a6 = reinterpret_cast<sockaddr_in6*>(it->ifa_addr);
          if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;
        }
        size_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
        bool isLoop = (it->ifa_flags & IFF_LOOPBACK) != 0;
        if (!spec.empty()) {
          if (!matchesIfname(it->ifa_name, spec)) continue;
        } else if (isLoop) {
          if (loopback.length == 0 && family == AF_INET) {
            std::memcpy(&loopback.storage, it->ifa_addr, len);
            loopback.length = static_cast<socklen_t>(len);
          }
          continue;
        }
        std::memcpy(&chosen.storage, it->ifa_addr, len);
        chosen.length = static_cast<socklen_t>(len);
        SQZ_INFO("bootstrap: listening on interface %s", it->ifa_name);
        break;
      }
    }
    freeifaddrs(list);
  }
  if (chosen.length == 0) {
    if (!spec.empty()) fail(sqzInvalidArgument, "SQZ_SOCKET_IFNAME=%s matches no up interface", spec.c_str());
    if (loopback.length == 0) {
      auto* a = reinterpret_cast<sockaddr_in*>(&loopback.storage);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      loopback.length = sizeof(sockaddr_in);
    }
    chosen = loopback;
  }
  chosen.setPort(0);
  return chosen;
}

SocketAddress resolveAddress(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res) fail(sqzInvalidArgument, "cannot resolve '%s': %s", host.c_str(), gai_strerror(rc));
  SocketAddress a;
  std::memcpy(&a.storage, res->ai_addr, res->ai_addrlen);
  a.length = res->ai_addrlen;
  freeaddrinfo(res);
  return a;
}

Socket listenOn(const SocketAddress& addr, SocketAddress* bound) {
  Socket s(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) fail(sqzSystemError, "bootstrap: socket: %s", strerror(errno));
  int one = 1;
  setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s.fd(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) != 0) {
    const int err = errno;
    fail(err == EADDRNOTAVAIL ? sqzInvalidUsage : sqzSystemError, "bootstrap: bind %s: %s%s",
         addr.toString().c_str(), strerror(err),
         err == EADDRNOTAVAIL ? " (no interface of this host has that address: MASTER_ADDR or SQZ_ROOT must name "
                                "rank 0's own host)"
                              : "");
  }
  if (::listen(s.fd(), SOMAXCONN) != 0) fail(sqzSystemError, "bootstrap: listen: %s", strerror(errno));
  bound->length = sizeof(bound->storage);
  getsockname(s.fd(), reinterpret_cast<sockaddr*>(&bound->storage), &bound->length);
  return s;
}

namespace {

// One non-blocking connect, waited for until the deadline at most (a
// blocking connect to a host that drops SYNs would wait ~127 s whatever
// SQZ_TIMEOUT says). Returns 0 or the errno of the failure.
int connectOnce(const Socket& s, const SocketAddress& addr, const Deadline& deadline) {
  if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  for (;;) {
    pollfd p{s.fd(), POLLOUT, 0};
    const int r = ::poll(&p, 1, deadline.remainingMs());
    if (r == 0) return ETIMEDOUT;
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
  }
}

}  // namespace

Socket connectWithRetry(const SocketAddress& addr, const Deadline& deadline) {
  int delayMs = 10;
  for (;;) {
    Socket s(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.valid()) fail(sqzSystemError, "bootstrap: socket: %s", strerror(errno));
    const int err = connectOnce(s, addr, deadline);
    if (err == 0) {
      int one = 1;
      setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return s;
    }
    if (err != ECONNREFUSED && err != ETIMEDOUT && err != EHOSTUNREACH && err != ENETUNREACH &&
        err != ECONNRESET && err != EAGAIN)
      fail(sqzSystemError, "bootstrap: connect to %s: %s", addr.toString().c_str(), strerror(err));
    if (deadline.expired())
      fail(sqzTimeout, "bootstrap: could not reach the root at %s within SQZ_TIMEOUT=%gs (%s)",
           addr.toString().c_str(), timeoutSeconds(), strerror(err));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(delayMs, deadline.remainingMs() + 1)));
    delayMs = std::min(delayMs * 2, 200);
  }
}

}  // namespace sqz
