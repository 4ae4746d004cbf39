// Error-feedback state of one logical buffer: the residual of what
// compression left out (added back on the next call), the owner-side
// residual of the chunk this rank re-encodes, and the call counter that keys
// the shared RNG. Held by sqzState_t (a state the caller names, which
// carries residuals), or by the communicator for calls that name none
// (src/implicit_states.h: never a residual).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sqz.h"
#include "src/auto_tuner.h"

namespace sqz {

struct ErrorFeedbackState {
  ErrorFeedbackState(size_t count, sqzDataType_t type, bool keepsResidual = true)
      : count(count), type(type), keepsResidual(keepsResidual) {}

  size_t count;
  sqzDataType_t type;
  bool keepsResidual;                // false: what a codec leaves out is dropped, never carried
  std::vector<float> residual;       // count floats once a lossy call ran
  std::vector<float> ownerResidual;  // the owned chunk's floats
  uint64_t step = 0;                 // lossy calls so far (identical on all ranks)
  bool residualDirty = false;        // residual may hold mass not yet sent
  TuningState tuning;                // for SQZ_COMPRESSION=auto

  // Sizes the residuals on first use (zeros: nothing owed yet).
  void ensure(size_t ownerCount) {
    if (!keepsResidual) return;
    if (residual.size() != count) residual.assign(count, 0.0f);
    if (ownerResidual.size() < ownerCount) ownerResidual.resize(ownerCount, 0.0f);
  }
  float* residualOrNull() { return residual.empty() ? nullptr : residual.data(); }
  float* ownerResidualOrNull() { return ownerResidual.empty() ? nullptr : ownerResidual.data(); }
};

}  // namespace sqz
