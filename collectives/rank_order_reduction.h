// The last step of the one-round allreduces (direct, shm): every rank holds
// every rank's contribution and reduces them in rank order 0..N-1, so all
// ranks compute bitwise-identical results without a second round.
#pragma once

#include <vector>

#include "collectives/collective_args.h"

namespace sqz {

class RankOrderReduction {
 public:
  // parts[r]: rank r's a.count elements of a.type (one of them may be
  // a.recv: an in-place call's own part). Writes a.recv.
  void run(const std::vector<const unsigned char*>& parts, const AllreduceArgs& a);

 private:
  // Kept between calls: a small call allocates nothing.
  std::vector<unsigned char> acc_, wide_;
};

}  // namespace sqz
