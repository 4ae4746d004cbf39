// Minimal TCP helpers for the bootstrap: every blocking step is bounded by a
// Deadline, so a silent or hostile peer cannot stall a rank.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string>

#include "common/env.h"

namespace sqz {

// An owned file descriptor.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { int f = fd_; fd_ = -1; return f; }

  void sendAll(const void* buf, size_t n, const Deadline& deadline);
  void recvAll(void* buf, size_t n, const Deadline& deadline);

 private:
  int fd_ = -1;
};

// A socket address that fits in the unique id (IPv4 or IPv6).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string toString() const;
  int port() const;
  void setPort(int port);
};

// The address bootstrap listens on: SQZ_SOCKET_IFNAME (comma-separated
// interface-name prefixes, as NCCL_SOCKET_IFNAME), else the first up
// non-loopback interface, else loopback. Port 0.
SocketAddress pickListenAddress();

// Resolves host:port (numeric or name).
SocketAddress resolveAddress(const std::string& host, int port);

// Listens on addr (port 0 = any); returns the socket and the bound address.
Socket listenOn(const SocketAddress& addr, SocketAddress* bound);

// Connects, retrying refused connections until the deadline (the root may
// not be listening yet); no attempt outlives the deadline, even one whose
// SYN goes unanswered. The socket is non-blocking.
Socket connectWithRetry(const SocketAddress& addr, const Deadline& deadline);

}  // namespace sqz
