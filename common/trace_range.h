// NVTX ranges (Nsight Systems shows them on the timeline next to CUDA and
// NCCL activity). nvtx3 is header-only and does nothing unless a tool is
// attached; without the CUDA toolkit the ranges compile away.
#pragma once

#if defined(SQZ_HAVE_CUDA)
#include <nvtx3/nvToolsExt.h>
#endif

namespace sqz {

class TraceRange {
 public:
  explicit TraceRange(const char* name) {
#if defined(SQZ_HAVE_CUDA)
    nvtxRangePushA(name);
#else
    (void)name;
#endif
  }
  ~TraceRange() {
#if defined(SQZ_HAVE_CUDA)
    nvtxRangePop();
#endif
  }
  TraceRange(const TraceRange&) = delete;
  TraceRange& operator=(const TraceRange&) = delete;
};

}  // namespace sqz
