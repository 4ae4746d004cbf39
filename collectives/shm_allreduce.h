// Exact allreduce of small buffers through the communicator's shared
// segment (collectives/shm_segment.h), for ranks that all share one node:
// each rank copies its header and data into its slot, waits once for every
// rank's, and reduces all slots in rank order (RankOrderReduction), so every
// rank writes bitwise-identical output. No message and no transport progress
// per call: with more ranks than cores a call needs each rank scheduled
// only once, where the transport's rounds need several.
#pragma once

#include <vector>

#include "collectives/call_agreement.h"
#include "collectives/collective_args.h"
#include "collectives/rank_order_reduction.h"
#include "collectives/shm_segment.h"
#include "transport/transport.h"

namespace sqz {

class ShmAllreduce {
 public:
  ShmAllreduce(Transport& transport, ShmSegment& segment) : transport_(transport), segment_(segment) {}
  // Whether a call of `bytes` fits a slot.
  static bool fits(size_t bytes) { return bytes <= ShmSegment::kPayloadMaxBytes; }
  void run(const AllreduceArgs& args);

 private:
  Transport& transport_;
  ShmSegment& segment_;
  HeaderRound round_;
  RankOrderReduction reduction_;
  std::vector<const unsigned char*> parts_;
};

}  // namespace sqz
