// SQZ_TIMELINE=path: a Chrome-trace file per rank (chrome://tracing or
// Perfetto; Horovod's timeline does the same) holding every allreduce with
// its plan, bytes and time in tune / encode / transfer / decode, plus any
// event a caller adds through sqzTimelineRecord (the Python package's
// queueing and fusion phases land in the same file). The file of rank r of
// an n > 1 job is `path` with ".rank<r>" before the extension.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "sqz.h"

namespace sqz {

// Seconds on the monotonic clock (the base of Python's time.perf_counter).
double monotonicSeconds();

class Timeline {
 public:
  // Null when SQZ_TIMELINE is unset or the file cannot be opened (warned).
  static std::unique_ptr<Timeline> fromEnv(int rank, int nranks);
  ~Timeline();

  // A complete event ("ph":"X") on lane `tid`; argsJson: a JSON object or "".
  void complete(const std::string& name, const std::string& category, int tid, double startSeconds,
                double durationSeconds, const std::string& argsJson);
  // One host allreduce: its plan, bytes and phase times (lane 0), and the
  // tuner's share of it (lane 1) when it had one.
  void allreduce(const sqzCallInfo& info, double startSeconds, double tuneSeconds);

 private:
  Timeline(std::FILE* file, int rank) : file_(file), rank_(rank) {}
  std::mutex mu_;
  std::FILE* file_;
  int rank_;
  bool first_ = true;
};

}  // namespace sqz
