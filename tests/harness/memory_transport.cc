#include "harness/memory_transport.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/error.h"

namespace sqz::test {
namespace {

using Clock = std::chrono::steady_clock;

double now() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }
Clock::time_point at(double seconds) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace

void MemoryMailbox::put(const Key& k, Message m) {
  std::lock_guard<std::mutex> lock(mu_);
  box_[k] = std::move(m);
  cv_.notify_all();
}

bool MemoryMailbox::take(const Key& k, const Deadline& deadline, Message* out) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!box_.count(k)) {
    if (deadline.expired()) return false;
    cv_.wait_for(lock, std::chrono::milliseconds(5));
  }
  *out = std::move(box_[k]);
  box_.erase(k);
  lock.unlock();
  std::this_thread::sleep_until(at(out->arrival));
  return true;
}

MemoryTransport::MemoryTransport(int rank, int size, MemoryMailbox& box, double rate, double burst)
    : rank_(rank), size_(size), box_(box), rate_(rate), burst_(burst), tokens_(burst), last_(now()) {}

RequestId MemoryTransport::postSend(int peer, Tag tag, const void* buf, size_t bytes) {
  if (stallEvery_ > 0 && ++sends_ % stallEvery_ == 0)
    std::this_thread::sleep_for(std::chrono::duration<double>(stallSeconds_));
  double done = now();
  if (rate_ > 0) {
    // tbf: the bucket refills at `rate` up to `burst`; a message waits
    // (behind the previous one) until the bucket holds its bytes.
    const double start = std::max(done, busyUntil_);
    tokens_ = std::min(burst_, tokens_ + (start - last_) * rate_);
    const double wait = std::max(0.0, (static_cast<double>(bytes) - tokens_) / rate_);
    done = start + wait;
    tokens_ += wait * rate_ - static_cast<double>(bytes);
    last_ = busyUntil_ = done;
  }
  MemoryMailbox::Message m;
  const auto* p = static_cast<const unsigned char*>(buf);
  m.bytes.assign(p, p + bytes);
  m.arrival = done;
  box_.put({rank_, peer, tag.seq, tag.slot}, std::move(m));
  ops_[next_] = {true, peer, tag, nullptr, 0, done, nullptr};
  return next_++;
}

RequestId MemoryTransport::postRecv(int peer, Tag tag, void* buf, size_t bytes) {
  ops_[next_] = {false, peer, tag, buf, bytes, 0, nullptr};
  return next_++;
}

RequestId MemoryTransport::postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) {
  ops_[next_] = {false, peer, tag, buf, capacity, 0, received};
  return next_++;
}

bool MemoryTransport::test(RequestId) { throw Error(sqzInternalError, "MemoryTransport: test is not implemented"); }

void MemoryTransport::wait(RequestId id, const Deadline& deadline) {
  const auto it = ops_.find(id);
  if (it == ops_.end()) throw Error(sqzInternalError, "MemoryTransport: unknown request");
  const Request r = it->second;
  ops_.erase(it);
  if (r.send) {
    std::this_thread::sleep_until(at(r.done));
    return;
  }
  MemoryMailbox::Message m;
  if (!box_.take({r.peer, rank_, r.tag.seq, r.tag.slot}, deadline, &m))
    throw Error(sqzTimeout, "MemoryTransport: no message from rank " + std::to_string(r.peer));
  if (r.received ? m.bytes.size() > r.bytes : m.bytes.size() != r.bytes)
    throw Error(sqzInvalidUsage, "MemoryTransport: " + std::to_string(m.bytes.size()) + " bytes for a receive of " +
                                     (r.received ? "at most " : "") + std::to_string(r.bytes));
  if (!m.bytes.empty()) std::memcpy(r.buf, m.bytes.data(), m.bytes.size());
  if (r.received) *r.received = m.bytes.size();
}

}  // namespace sqz::test
