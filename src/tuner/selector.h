// Chooses the plan of a call (DESIGN.md section 1): for each candidate,
// gain from the gradient statistics (gain() of kernels/grad_stats.h; for a
// hierarchical plan the product of its stages' gains) and cost from the
// CostModel; the choice is argmax gain / cost. Hysteresis: the previous
// choice stays unless the new best scores more than (1 + margin) times it,
// so noise in the statistics does not flap the plan.
//
// Deterministic: the result depends only on the candidates (in order), the
// statistics, the profile and the previous choice. Ranks that pass the same
// (exactly reduced) statistics and the same profile (broadcast rank 0's
// Profile::toJson() at init) choose the same plan; ties go to the earlier
// candidate.
#pragma once

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

double candidateGain(const GradStats& stats, const Candidate& c);

class Selector {
 public:
  explicit Selector(double hysteresis = 0.05) : hysteresis_(hysteresis) {}

  // `label` names the buffer in the log. Candidates must not be empty.
  Plan choose(const std::vector<Candidate>& candidates, const GradStats& stats, const CostModel& model,
              const std::string& label = "");
  const std::string& previous() const { return previous_; }
  void reset() { previous_.clear(); }

 private:
  double hysteresis_;
  std::string previous_;
};

// Bytes one rank sends in the exact ring ("ring" among the ranked), or 0.
double denseRingBytes(const Plan& plan);
// The `top` best, one line each: name, gain, time (encode, transfer,
// decode, overhead), ratio (dense ring bytes / bytes sent), cost and score.
std::string describeRanking(const Plan& plan, size_t top);

}  // namespace sqz
