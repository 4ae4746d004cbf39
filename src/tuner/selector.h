// Chooses the plan of a call (DESIGN.md section 1): for each candidate, the
// gain (predicted training progress of the call relative to exact,
// src/tuner/progress_model.h) and the cost from the CostModel; the choice
// is argmax gain / (cost + the rest of the training step), i.e. progress
// per second of training. Hysteresis: the previous choice stays unless the
// new best scores more than (1 + margin) times it, so noise in the
// statistics does not flap the plan; except a choice made before the rest
// of the step was known (the first call: time scores without it rank the
// call alone), which the next choice is not held to.
//
// Deterministic: the result depends only on the candidates (in order), the
// statistics, the profile and the previous choice. Ranks that pass the same
// (exactly reduced) statistics and the same profile (broadcast rank 0's
// Profile::toJson() at init) choose the same plan; ties go to the earlier
// candidate.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kernels/grad_stats.h"
#include "src/tuner/candidate.h"
#include "src/tuner/cost_model.h"

namespace sqz {

struct ScoredCandidate {
  Candidate candidate;
  double gain = 0;
  CostBreakdown cost;
  double score = 0;  // gain / cost.cost
};

struct Plan {
  ScoredCandidate chosen;
  std::vector<ScoredCandidate> ranked;  // every candidate, best first (stable)
  bool changed = false;                 // differs from the previous choice
  bool exactForced = false;             // non-finite statistics: exact ring
  std::string name() const { return chosen.candidate.name(); }
};

// The gain of a candidate (what the selector maximizes per second).
using GainOf = std::function<double(const Candidate&)>;
// Progress model gains at noise nu on N ranks (lag scales measured: none).
GainOf progressGains(const GradStats& stats, int ranks, double nu);

class Selector {
 public:
  explicit Selector(double hysteresis = 0.05) : hysteresis_(hysteresis) {}

  // `label` names the buffer in the log. Candidates must not be empty.
  // otherSeconds: the rest of the training step (compute, other buffers'
  // calls), added to every candidate's time when the cost is time.
  Plan choose(const std::vector<Candidate>& candidates, const GradStats& stats, const GainOf& gainOf,
              const CostModel& model, const std::string& label = "", double otherSeconds = 0);
  const std::string& previous() const { return previous_; }
  // The previous choice stays unless a candidate scores more than
  // (1 + hysteresis) times it, or it was made with a time cost and
  // otherSeconds <= 0 (the rest of the step not yet measured).
  double hysteresis() const { return hysteresis_; }
  void reset() {
    previous_.clear();
    previousInformed_ = true;
  }

 private:
  double hysteresis_;
  std::string previous_;
  bool previousInformed_ = true;  // the previous choice knew the rest of the step (or cost is not time)
};

// Bytes one rank sends in the exact ring ("ring" among the ranked), or 0.
double denseRingBytes(const Plan& plan);
// The `top` best, one line each: name, gain, time (encode, transfer,
// decode, overhead), ratio (dense ring bytes / bytes sent), cost and score.
std::string describeRanking(const Plan& plan, size_t top);

}  // namespace sqz
