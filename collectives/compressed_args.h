// What a compressed allreduce needs beyond the exact one: the codec, the
// error-feedback residuals it updates, the RNG key, and where to report
// bytes and time (for sqzGetCallInfo and the tuner).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "collectives/collective_args.h"
#include "common/trace_range.h"
#include "kernels/codec_params.h"

namespace sqz {

// Bytes and seconds of one call, by phase.
struct CallCounters {
  size_t wireBytes = 0;  // bytes this rank sent
  double encodeSeconds = 0, decodeSeconds = 0;
};

struct CompressedArgs {
  AllreduceArgs base;      // op is sqzSum or sqzAvg; type fp32, fp16 or bf16
  CodecParams codec;
  float* residual = nullptr;       // count floats: sender-side error feedback (null: none)
  float* ownerResidual = nullptr;  // ownerResidualCount floats: owner-side error feedback
  size_t ownerResidualCount = 0;
  uint64_t seed = 0;  // identical on all ranks
  uint64_t step = 0;  // the buffer's call number, identical on all ranks
  CallCounters* counters = nullptr;  // null: the caller keeps no counts

  // Where the algorithms count: the caller's counters, or a scratch nobody reads.
  CallCounters& tally() const {
    thread_local CallCounters discarded;
    return counters ? *counters : discarded;
  }
};

// Adds the time of its scope to a counter, and marks it as an NVTX range.
class PhaseTimer {
 public:
  PhaseTimer(double* sink, const char* name) : range_(name), sink_(sink), start_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() {
    if (sink_) *sink_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  TraceRange range_;
  double* sink_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sqz
