// Exact allreduce of medium buffers through the communicator's shared
// segment (collectives/shm_segment.h), for ranks that all share one node:
// each rank copies its data into its large slot and publishes it with the
// call's header (one exchange, which also agrees on the call); each rank
// then reduces its 1/N share of the elements across all slots in rank order
// (RankOrderReduction) into the result area and publishes again; every
// rank copies the whole result out. Each element is reduced once, in the
// same order, so every rank's output is bitwise identical. Two waits per
// call and no message, where the ring needs 2(N-1) transport steps.
//
// A buffer larger than a slot goes through in slot-sized pieces, two waits
// each, in place or not alike: the call is then agreed before (its header
// cannot ride with the data), and a rank inside sqzJoin takes part with
// zeros.
#pragma once

#include <vector>

#include "collectives/call_agreement.h"
#include "collectives/collective_args.h"
#include "collectives/rank_order_reduction.h"
#include "collectives/shm_segment.h"
#include "transport/transport.h"

namespace sqz {

class ShmRsAllreduce {
 public:
  ShmRsAllreduce(Transport& transport, ShmSegment& segment) : transport_(transport), segment_(segment) {}
  // Whether a call of `bytes` fits a large slot on `nranks` ranks: one
  // piece, whose first exchange may carry the call's header (args.header).
  // Larger calls run in pieces and need args.header null.
  static bool fits(size_t bytes, int nranks) { return bytes <= ShmSegment::largeSlotBytes(nranks); }
  void run(const AllreduceArgs& args);

 private:
  void runInPieces(const AllreduceArgs& args);
  // Reduces this rank's 1/N of the first `count` elements of every slot, in
  // rank order, into the same place in the result area.
  void reduceShare(const AllreduceArgs& args, size_t count);

  Transport& transport_;
  ShmSegment& segment_;
  HeaderRound round_;
  RankOrderReduction reduction_;
  std::vector<const unsigned char*> parts_;
  std::vector<unsigned char> zeros_;  // a joined rank's part
};

}  // namespace sqz
