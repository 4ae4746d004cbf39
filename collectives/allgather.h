// Exact allgather: every rank sends its block to every other rank directly
// (one round); block r lands at recv + r * bytes on every rank.
#pragma once

#include "collectives/collective_args.h"
#include "transport/transport.h"

namespace sqz {

class AllGather {
 public:
  explicit AllGather(Transport& transport) : transport_(transport) {}
  void run(const void* send, void* recv, size_t bytesPerRank, uint32_t seq, const Deadline& deadline);

 private:
  Transport& transport_;
};

}  // namespace sqz
