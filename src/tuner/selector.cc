#include "src/tuner/selector.h"

#include <algorithm>

#include "common/error.h"
#include "common/log.h"
#include "src/tuner/progress_model.h"

namespace sqz {

GainOf progressGains(const GradStats& stats, int ranks, double nu) {
  ProgressInputs in;
  in.nu = nu;
  return [&stats, ranks, in](const Candidate& c) { return planGain(stats, c.spec, ranks, in); };
}

Plan Selector::choose(const std::vector<Candidate>& candidates, const GradStats& stats, const GainOf& gainOf,
                      const CostModel& model, const std::string& label, double otherSeconds) {
  SQZ_CHECK(!candidates.empty(), "tuner: no candidates");
  Plan plan;
  plan.ranked.reserve(candidates.size());
  for (const Candidate& c : candidates) {
    ScoredCandidate s;
    s.candidate = c;
    s.gain = stats.nonFinite > 0 ? 0.0 : gainOf(c);
    s.cost = model.evaluate(c);
    const double per = s.cost.cost + (model.profile().costModel.usesTime() ? std::max(0.0, otherSeconds) : 0.0);
    s.score = per > 0 ? s.gain / per : (s.gain > 0 ? 1e300 : 0.0);
    plan.ranked.push_back(std::move(s));
  }
  std::stable_sort(plan.ranked.begin(), plan.ranked.end(),
                   [](const ScoredCandidate& a, const ScoredCandidate& b) { return a.score > b.score; });

  size_t pick = 0;
  if (stats.nonFinite > 0) {
    // No codec applies (every gain is 0): the exact ring, whatever it costs.
    plan.exactForced = true;
    for (size_t i = 0; i < plan.ranked.size(); ++i) {
      const PlanSpec& sp = plan.ranked[i].candidate.spec;
      if (!sp.hierarchical && sp.algorithm == "ring" && sp.codec.kind == CodecKind::None) {
        pick = i;
        break;
      }
    }
  } else if (!previous_.empty() && previousInformed_) {
    for (size_t i = 0; i < plan.ranked.size(); ++i) {
      if (plan.ranked[i].candidate.name() != previous_) continue;
      if (plan.ranked[0].score <= plan.ranked[i].score * (1.0 + hysteresis_)) pick = i;
      break;
    }
  }
  plan.chosen = plan.ranked[pick];
  plan.changed = plan.name() != previous_;
  previous_ = plan.name();
  // A time score without the rest of the step ranks by the call alone,
  // which favours the cheapest call more than a training step does: the
  // next choice, with the step measured, is not held to this one.
  previousInformed_ = !model.profile().costModel.usesTime() || otherSeconds > 0;
  if (plan.changed && logLevel() >= LogLevel::kInfo) {
    SQZ_INFO("tuner: %s%schose %s%s; top candidates:\n%s", label.c_str(), label.empty() ? "" : ": ",
             plan.name().c_str(), plan.exactForced ? " (non-finite values: exact)" : "",
             describeRanking(plan, 5).c_str());
  } else if (logLevel() >= LogLevel::kTrace) {
    SQZ_TRACE("tuner: %s%skept %s; every candidate:\n%s", label.c_str(), label.empty() ? "" : ": ",
              plan.name().c_str(), describeRanking(plan, plan.ranked.size()).c_str());
  }
  return plan;
}

double denseRingBytes(const Plan& plan) {
  for (const ScoredCandidate& s : plan.ranked)
    if (s.candidate.name() == "ring") return s.cost.bytesSent;
  return 0.0;
}

std::string describeRanking(const Plan& plan, size_t top) {
  const double denseBytes = denseRingBytes(plan);
  std::string out;
  for (size_t i = 0; i < plan.ranked.size() && i < top; ++i) {
    const ScoredCandidate& s = plan.ranked[i];
    // Compression ratio as sqzCallInfo reports it: dense ring bytes over
    // the bytes one rank sends.
    const double ratio = s.cost.bytesSent > 0 ? denseBytes / s.cost.bytesSent : 0.0;
    out += formatString(
        "  %-26s gain=%.4f time=%.4gms (enc %.3g xfer %.3g dec %.3g ovh %.3g) ratio=%.3g cost=%.4g score=%.4g\n",
        s.candidate.name().c_str(), s.gain, s.cost.seconds * 1e3, s.cost.encodeSeconds * 1e3,
        s.cost.transferSeconds * 1e3, s.cost.decodeSeconds * 1e3, s.cost.overheadSeconds * 1e3, ratio, s.cost.cost,
        s.score);
  }
  return out;
}

}  // namespace sqz
