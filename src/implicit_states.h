// The library's one rule for calls that name no error-feedback state:
// sqzAllReduce under a compression policy, sqzAllReduceEx with state NULL,
// and the NCCL and MPI interposers (which make those calls).
//
// Such a call carries no residual from one call to the next: its codec is
// applied to g alone and what it leaves out is dropped. The library cannot
// tell one tensor from another at a reused address (PyTorch's caching
// allocator hands a freed gradient's address, with the same count, to the
// next tensor), so a residual kept per (address, count) would flow into a
// tensor it does not belong to; with no residual there is nothing to flow.
// The price: top-K and random-K, which depend on error feedback, lose what
// they leave out on such calls, and `auto` chooses only among codecs that
// need none (quantizers and casts). Residuals live only in states the
// caller names (sqzState_t; Python's state_key, DistributedOptimizer and
// DDP hook), which cannot mix by construction.
//
// What implicit calls do keep is auto's tuning (lagged statistics, plan,
// statistics cadence), per (count, type): every rank keys it alike (count
// and type are agreed in the call header), a shared one only steers the
// plan, never the sum, and at most kCapacity are kept (least recently used
// dropped, identically on every rank).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>

#include "sqz.h"
#include "src/error_feedback_state.h"

namespace sqz {

class ImplicitStates {
 public:
  static constexpr size_t kCapacity = 64;

  // The state of an implicit call of count x type, number `call` of this
  // communicator: no residual; its step (the codecs' RNG key) is `call`,
  // identical on every rank.
  ErrorFeedbackState& forCall(size_t count, sqzDataType_t type, uint64_t call);
  size_t size() const { return states_.size(); }

 private:
  std::list<std::unique_ptr<ErrorFeedbackState>> states_;  // most recently used first
};

}  // namespace sqz
