// Latency-optimal exact allreduce for small buffers: every rank sends its
// whole buffer to every other rank (one round), then each rank reduces all
// contributions in rank order 0..N-1, so all ranks compute bitwise-identical
// results without a second round. A call not yet agreed on sends its header
// in the same message (HeaderRound): one round for the whole call.
#pragma once

#include <vector>

#include "collectives/call_agreement.h"
#include "collectives/collective_args.h"
#include "collectives/rank_order_reduction.h"
#include "transport/transport.h"

namespace sqz {

class DirectAllreduce {
 public:
  explicit DirectAllreduce(Transport& transport) : transport_(transport) {}
  void run(const AllreduceArgs& args);

  static double bytesSentPerRank(double bytes, int nranks) { return bytes * (nranks - 1); }

 private:
  Transport& transport_;
  HeaderRound round_;
  // Kept between calls, as the buffers: a small call allocates nothing.
  std::vector<const unsigned char*> parts_;
  std::vector<RequestId> reqs_;
  std::vector<unsigned char> gathered_;
  RankOrderReduction reduction_;
};

}  // namespace sqz
