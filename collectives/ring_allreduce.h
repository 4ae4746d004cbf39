// Bandwidth-optimal exact allreduce: ring reduce-scatter then ring
// allgather (as Gloo's allreduce_ring / NCCL's ring), each step split into
// chunks so that reducing one chunk overlaps the transfer of the next.
// Each segment's final value is computed by exactly one rank and copied to
// the others, so all ranks hold bitwise-identical results.
#pragma once

#include <vector>

#include "collectives/collective_args.h"
#include "transport/transport.h"

namespace sqz {

class RingAllreduce {
 public:
  RingAllreduce(Transport& transport, size_t chunkBytes);
  void run(const AllreduceArgs& args);

  // Bytes each rank sends for `bytes` of payload (the tuner's cost input).
  static double bytesSentPerRank(double bytes, int nranks) {
    return nranks > 1 ? 2.0 * bytes * (nranks - 1) / nranks : 0.0;
  }

 private:
  Transport& transport_;
  size_t chunkBytes_;
  std::vector<unsigned char> work_;  // fp32 accumulators for 16-bit types
  std::vector<unsigned char> staging_;  // two receive buffers of one segment
};

}  // namespace sqz
