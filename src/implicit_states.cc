#include "src/implicit_states.h"

namespace sqz {

ErrorFeedbackState& ImplicitStates::forCall(size_t count, sqzDataType_t type, uint64_t call) {
  auto it = states_.begin();
  while (it != states_.end() && ((*it)->count != count || (*it)->type != type)) ++it;
  if (it == states_.end()) {
    states_.push_front(std::make_unique<ErrorFeedbackState>(count, type, /*keepsResidual=*/false));
    if (states_.size() > kCapacity) states_.pop_back();
  } else if (it != states_.begin()) {
    states_.splice(states_.begin(), states_, it);
  }
  ErrorFeedbackState& st = *states_.front();
  st.step = call;
  return st;
}

}  // namespace sqz
