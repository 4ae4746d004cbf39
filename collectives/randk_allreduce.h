#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "collectives/ring_allreduce.h"

namespace sqz {

// Random-K: indices drawn from a seed every rank shares, so only the K
// values travel, through the exact dense ring; then scattered back.
class RandkAllreduce {
 public:
  explicit RandkAllreduce(RingAllreduce& ring, int nranks) : ring_(ring), nranks_(nranks) {}
  void run(const CompressedArgs& args);
  static double bytesSentPerRank(const CodecParams& codec, size_t count, int nranks);

 private:
  RingAllreduce& ring_;
  int nranks_;
  std::vector<float> values_, out_;
};

}  // namespace sqz
