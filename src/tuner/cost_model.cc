#include "src/tuner/cost_model.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "common/error.h"

namespace sqz {

double CostModel::stageTransferSeconds(const Stage& s) const {
  if (s.steps <= 0 || s.messagesPerStep <= 0) return 0.0;
  const double stepBytes = s.messageBytes * s.messagesPerStep * (s.linkSharers > 0 ? s.linkSharers : 1);
  return s.steps * profile_.curve(s.link).time(stepBytes);
}

CostBreakdown CostModel::evaluate(const Candidate& c) const {
  CostBreakdown b;
  const CodecThroughput& t = profile_.codecs;
  double modelCost = 0;
  for (const Stage& s : c.stages) {
    b.encodeSeconds += t.encodeSeconds(device_, s.codec, s.encodeElements);
    b.decodeSeconds += t.decodeSeconds(device_, s.codec, s.decodeElements);
    b.transferSeconds += stageTransferSeconds(s);
    b.bytesSent += s.bytesSentPerRank();
    if (!profile_.costModel.usesTime())
      modelCost += static_cast<double>(s.steps) * s.messagesPerStep * profile_.costModel.messageCost(s.messageBytes);
  }
  // Every call also pays the agreement round (and, for tuned calls, the
  // statistics pass): the same for all candidates, but it dilutes the
  // advantage of plans whose own cost is tiny.
  b.overheadSeconds = profile_.callOverheadSeconds + c.overheadSeconds;
  b.seconds = b.encodeSeconds + b.transferSeconds + b.decodeSeconds + b.overheadSeconds;
  b.cost = profile_.costModel.usesTime() ? b.seconds : modelCost;
  return b;
}

MeasuredPlans::TimedSize::TimedSize(const PlanTimings& t, const CostModel& model, const Build& build) {
  if (t.empty()) return;
  elements = t.elements;
  tuneSeconds = t.tuneSeconds;
  std::map<std::string, std::vector<double>> byAlgorithm;
  for (const auto& [name, timed] : t.seconds) {
    const PlanSpec spec = parsePlanName(name);
    if (spec.hierarchical) continue;
    Entry e;
    e.timed = timed;
    const CostBreakdown b = model.evaluate(build(spec, t.elements, t.elementBytes));
    e.modelled = b.seconds - b.overheadSeconds;
    e.perElement = (e.timed - e.modelled) / t.elements;
    plans[name] = e;
    byAlgorithm[spec.algorithm].push_back(e.perElement);
  }
  for (auto& [algorithm, v] : byAlgorithm) {
    std::sort(v.begin(), v.end());
    algorithmPerElement[algorithm] = std::max(0.0, v[v.size() / 2]);
  }
}

bool MeasuredPlans::TimedSize::correction(const Candidate& c, double* seconds) const {
  if (elements <= 0) return false;
  auto it = c.spec.hierarchical ? plans.end() : plans.find(c.name());
  if (it != plans.end()) {
    *seconds = it->second.perElement * elements;
    return true;
  }
  auto a = algorithmPerElement.find(c.spec.algorithm);
  if (a == algorithmPerElement.end()) return false;
  *seconds = a->second * elements;
  return true;
}

MeasuredPlans::MeasuredPlans(const Profile& profile, const CostModel& model, const Build& build)
    : large_(profile.plans, model, build), small_(profile.plansAtJobSize, model, build) {}

double MeasuredPlans::extraSeconds(const Candidate& c, double n, double modelledSeconds) const {
  if (n <= 0) return 0.0;
  double atSmall = 0, atLarge = 0;
  const double s = small_.elements, l = large_.elements;
  // A job size at or above the tiled size adds nothing to it.
  const bool small = small_.correction(c, &atSmall) && (l <= 0 || s < l);
  const bool large = large_.correction(c, &atLarge);
  double extra = 0;
  if (small && large) {
    extra = n <= s ? atSmall * n / s : n < l ? atSmall + (atLarge - atSmall) * (n - s) / (l - s) : atLarge * n / l;
  } else if (large) {
    extra = atLarge * n / l;
  } else if (small) {
    extra = n <= s ? atSmall * n / s : atSmall;
  } else {
    return 0.0;
  }
  return std::max(extra, -0.75 * modelledSeconds);
}

double linkCreditSavedSeconds(double bytes, double linkSeconds, double burstBytes, double bytesPerSecond,
                              double idleSeconds) {
  if (bytes <= 0 || linkSeconds <= 0 || burstBytes <= 0 || bytesPerSecond <= 0 || idleSeconds <= 0)
    return 0;
  const double credit = std::min(burstBytes, bytesPerSecond * idleSeconds);
  return std::min(std::min(bytes, credit) / bytesPerSecond, linkSeconds);
}

double linkCreditRealized(double uncreditedSeconds, double creditedSeconds, double measuredSeconds) {
  const double credit = uncreditedSeconds - creditedSeconds;
  if (!(measuredSeconds > 0) || !(uncreditedSeconds > 0) || !(credit >= kLinkCreditCheckShare * uncreditedSeconds))
    return std::numeric_limits<double>::quiet_NaN();
  return std::clamp((uncreditedSeconds - measuredSeconds) / credit, 0.0, 1.0);
}

void applyLinkCredit(std::vector<Candidate>& candidates, const CostModel& model, LinkClass link,
                     double idleSeconds, double sharedSeconds) {
  const double burst = model.profile().linkBurstBytes;
  if (burst <= 0 || idleSeconds <= 0) return;
  const double rate = model.profile().curve(link).largeMessageBandwidth();
  for (Candidate& c : candidates) {
    double bytes = 0;
    for (const Stage& s : c.stages)
      if (s.link == link) bytes += s.bytesSentPerRank() * std::max(1, s.linkSharers);
    const double linkSeconds = model.evaluate(c).transferSeconds + (c.overheadSeconds - sharedSeconds);
    c.overheadSeconds -= linkCreditSavedSeconds(bytes, std::max(0.0, linkSeconds), burst, rate, idleSeconds);
  }
}

void MeasuredPlans::apply(std::vector<Candidate>& candidates, double n, const CostModel& model,
                          double tuneSeconds) const {
  for (Candidate& c : candidates) {
    c.overheadSeconds = 0;
    const CostBreakdown b = model.evaluate(c);
    c.overheadSeconds = tuneSeconds + extraSeconds(c, n, b.seconds - b.overheadSeconds);
  }
}

double MeasuredPlans::tuneSeconds(double n, double fallback) const {
  if (large_.elements <= 0 || large_.tuneSeconds <= 0) return fallback;
  return large_.tuneSeconds * n / large_.elements;
}

std::string MeasuredPlans::describe() const {
  std::string out;
  for (const TimedSize* t : {&small_, &large_})
    for (const auto& [name, e] : t->plans)
      out += formatString("  %-26s at %9.0f elements: timed %.3f ms, modelled %.3f ms, correction %+.3f ms\n",
                          name.c_str(), t->elements, e.timed * 1e3, e.modelled * 1e3, (e.timed - e.modelled) * 1e3);
  return out;
}

}  // namespace sqz
