// A Transport for threads as ranks that moves bytes through memory, for
// unit tests of code written against the transport interface (calibration,
// the statistics' exchange) without UCX. Optionally each rank's sends leave
// through a token bucket as tc tbf shapes the testbed's links (DESIGN.md
// section 5): `rate` bytes per second, with a burst of `burst` bytes that
// goes out at once after idle time.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "transport/transport.h"

namespace sqz::test {

// Messages in flight between the ranks of one group, each with the time its
// last byte leaves the sender's shaper.
class MemoryMailbox {
 public:
  using Key = std::tuple<int, int, uint32_t, uint32_t>;  // from, to, seq, slot
  struct Message {
    std::vector<unsigned char> bytes;
    double arrival = 0;  // steady_clock seconds
  };
  void put(const Key& k, Message m);
  // Waits until the message is there and has arrived; false at the deadline.
  bool take(const Key& k, const Deadline& deadline, Message* out);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, Message> box_;
};

class MemoryTransport final : public Transport {
 public:
  // rate 0: unshaped (a send completes at once).
  MemoryTransport(int rank, int size, MemoryMailbox& box, double rate = 0, double burst = 0);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  RequestId postSend(int peer, Tag tag, const void* buf, size_t bytes) override;
  RequestId postRecv(int peer, Tag tag, void* buf, size_t bytes) override;
  RequestId postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) override;
  void wait(RequestId id, const Deadline& deadline) override;
  // Not needed by the code under test here: throws sqzInternalError.
  bool test(RequestId id) override;
  void cancelAll() override { ops_.clear(); }
  // A rank that a loaded host deschedules: every `every`-th send first
  // sleeps `seconds` (its shaper refills meanwhile, and its peers wait).
  void stallEverySends(int every, double seconds) {
    stallEvery_ = every;
    stallSeconds_ = seconds;
  }

 private:
  struct Request {
    bool send;
    int peer;
    Tag tag;
    void* buf;
    size_t bytes;  // a receive's size, or its capacity when `received` is set
    double done;   // a send's: when its last byte leaves the shaper
    size_t* received = nullptr;
  };

  int rank_, size_;
  MemoryMailbox& box_;
  double rate_, burst_, tokens_, last_, busyUntil_ = 0;
  int stallEvery_ = 0, sends_ = 0;
  double stallSeconds_ = 0;
  std::map<RequestId, Request> ops_;
  RequestId next_ = 1;
};

}  // namespace sqz::test
