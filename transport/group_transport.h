// A view of a transport restricted to a group of its ranks (e.g. the ranks
// of one node, or the ranks with the same local index on every node), so
// that any collective can run inside a group unchanged. Peers are numbered
// within the group; messages keep the parent's tags, which carry the sender's
// global rank, so disjoint groups never match each other's messages.
#pragma once

#include <vector>

#include "transport/transport.h"

namespace sqz {

class GroupTransport final : public Transport {
 public:
  // members: global ranks of the group, in group order; must contain parent.rank().
  GroupTransport(Transport& parent, std::vector<int> members) : parent_(parent), members_(std::move(members)) {
    for (size_t i = 0; i < members_.size(); ++i)
      if (members_[i] == parent.rank()) rank_ = static_cast<int>(i);
  }

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  RequestId postSend(int peer, Tag tag, const void* buf, size_t bytes) override {
    return parent_.postSend(members_[peer], tag, buf, bytes);
  }
  RequestId postRecv(int peer, Tag tag, void* buf, size_t bytes) override {
    return parent_.postRecv(members_[peer], tag, buf, bytes);
  }
  RequestId postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) override {
    return parent_.postRecvUpTo(members_[peer], tag, buf, capacity, received);
  }
  void wait(RequestId id, const Deadline& deadline) override { parent_.wait(id, deadline); }
  bool test(RequestId id) override { return parent_.test(id); }
  void cancelAll() override { parent_.cancelAll(); }
  void groupStart() override { parent_.groupStart(); }
  void groupEnd() override { parent_.groupEnd(); }

 private:
  Transport& parent_;
  std::vector<int> members_;
  int rank_ = -1;
};

}  // namespace sqz
