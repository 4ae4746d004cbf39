// The arguments every collective's run() takes, after the API layer has
// validated them and the ranks have agreed on the call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/env.h"
#include "sqz.h"

namespace sqz {

struct CallHeader;  // collectives/call_agreement.h

struct AllreduceArgs {
  const void* send = nullptr;
  void* recv = nullptr;
  size_t count = 0;
  sqzDataType_t type = sqzFloat32;
  sqzRedOp_t op = sqzSum;
  uint32_t seq = 0;  // the call's sequence number: all its tags carry it
  Deadline deadline{0};
  // Set when the ranks have not yet agreed on the call: the algorithm sends
  // this header in its first message and checks every rank's before it
  // writes any output (only algorithms that can carry it get one:
  // headerCanCarry, call_agreement.h).
  const CallHeader* header = nullptr;
};

// Splits [0, count) into `parts` contiguous ranges whose sizes differ by at
// most one element; range i is [offset(i), offset(i + 1)).
struct EvenSplit {
  size_t count;
  size_t parts;
  size_t offset(size_t i) const { return (count / parts) * i + (i < count % parts ? i : count % parts); }
  size_t length(size_t i) const { return offset(i + 1) - offset(i); }
};

}  // namespace sqz
