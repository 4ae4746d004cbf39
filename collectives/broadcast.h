// Exact broadcast from a root: the root sends the buffer to every rank
// directly (one round; adequate for the small-to-medium tensors that
// parameter and state broadcasts carry).
#pragma once

#include "collectives/collective_args.h"
#include "transport/transport.h"

namespace sqz {

class Broadcast {
 public:
  explicit Broadcast(Transport& transport) : transport_(transport) {}
  void run(const void* send, void* recv, size_t bytes, int root, uint32_t seq, const Deadline& deadline);

 private:
  Transport& transport_;
};

}  // namespace sqz
