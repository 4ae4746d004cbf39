#include "src/tuner/stats_cadence.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sqz {

double DecisionMargin::update(const Plan& plan, double hysteresis, uint64_t call, double commonSeconds) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const std::string chosen = plan.name();
  const ScoredCandidate& p = plan.chosen;
  const bool usable = !plan.exactForced && std::isfinite(p.score) && p.score > 0 && p.gain > 0;
  // A new plan (or none that scores) starts the gaps over: no rate yet.
  const bool sameDecision = usable && !plan.changed && chosen == plan_;
  const double calls = static_cast<double>(call > call_ ? call - call_ : 1);
  const double ownP = p.cost.cost - commonSeconds;
  // How fast a quantity moved since the previous exchange, per call.
  auto moved = [&](double now, double before) {
    if (std::isinf(now) && std::isinf(before)) return 0.0;
    const double d = std::fabs(now - before);
    return std::isfinite(d) ? d / calls : kInf;
  };
  std::map<std::string, Gap> gaps;
  double margin = sameDecision ? kInf : 0.0;
  if (usable) {
    for (const ScoredCandidate& c : plan.ranked) {
      const std::string name = c.candidate.name();
      if (name == chosen) continue;
      Gap g;
      // A candidate that scores nothing cannot take over until it does.
      const bool scores = c.score > 0 && c.gain > 0;
      g.full = scores ? std::log((1.0 + hysteresis) * p.score / c.score) : kInf;
      g.gains = scores ? std::log(p.gain / c.gain) : kInf;
      const double ownC = c.cost.cost - commonSeconds;
      g.worst = scores && ownP > 0 && ownC > 0
                    ? std::log(1.0 + hysteresis) + g.gains + std::min(0.0, std::log(ownC / ownP))
                    : -kInf;
      const auto prev = gaps_.find(name);
      if (sameDecision && prev != gaps_.end()) {
        const Gap& q = prev->second;
        // Where the shared time cannot close the gap (now and before), only
        // the gains can: their movement against w_c.
        const bool gainsOnly = g.worst > 0 && q.worst > 0;
        g.rate = gainsOnly ? moved(g.gains, q.gains) : moved(g.full, q.full);
        g.haveRate = true;
        const double rate = q.haveRate ? std::max(g.rate, q.rate) : g.rate;
        const double gap = std::max(0.0, gainsOnly ? g.worst : g.full);
        const double covered = rate > 0 ? gap / rate : kInf;
        margin = std::min(margin, std::isnan(covered) ? 0.0 : covered);
      } else {
        margin = 0;  // nothing to compare with
      }
      gaps.emplace(name, g);
    }
  }
  gaps_ = std::move(gaps);
  plan_ = usable ? chosen : std::string();
  call_ = call;
  calls_ = margin;
  return margin;
}

uint32_t nextStatsEvery(uint32_t every, bool planChanged, double statsSeconds, double planSeconds, uint32_t maxEvery,
                        double marginCalls) {
  if (planChanged || maxEvery <= 1) return 1;
  // Enough calls per exchange that the statistics are at most kStatsShare
  // of the plan's time; reached by doubling, so a drifting gradient that
  // changes the plan is followed call by call again at once.
  // A plan priced at nothing (a link's credit can bring a price to zero)
  // is the limit of a cheap one: the statistics cost more than any share
  // of it, so the other bounds decide, not "every call".
  const double share = planSeconds > 0 ? std::ceil(statsSeconds / (kStatsShare * planSeconds))
                                       : std::numeric_limits<double>::infinity();
  // Past kStatsEveryUnproven only as far as the decision's margin covers.
  const double margin = std::isnan(marginCalls) ? 0.0 : std::floor(marginCalls);
  const double held = std::max(static_cast<double>(kStatsEveryUnproven), margin);
  const double cap = std::clamp(std::min(share, held), 1.0, static_cast<double>(maxEvery));
  return std::min(std::max<uint32_t>(1, every) * 2, static_cast<uint32_t>(cap));
}

}  // namespace sqz
