// How often auto's statistics go out under lagged agreement while a
// buffer's plan holds (src/tuner/README.md section 10).
//
// Two rules, both functions of agreed numbers only (the reduced statistics,
// rank 0's profile, and the selector's scores computed from them), so every
// rank exchanges on the same calls without an extra round:
//   - the share rule: the interval doubles while the plan holds, up to where
//     the statistics cost kStatsShare of the plan's time, and at most
//     kStatsEveryUnproven calls;
//   - the margin rule: past kStatsEveryUnproven only as far as the decision's
//     margin covers, i.e. the calls it would take the scores, moving as fast
//     as they moved between the last exchanges, to change the choice.
// Neither goes past SQZ_STATS_EVERY_MAX (the longest a changed gradient goes
// unseen), and a change of plan brings the interval back to every call.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "src/tuner/selector.h"

namespace sqz {

// The largest share of a call that the statistics may take before their
// exchange backs off.
inline constexpr double kStatsShare = 0.02;
// The longest interval the share rule takes without a margin that covers it
// (SQZ_STATS_EVERY_MAX's default before the margin rule).
inline constexpr uint32_t kStatsEveryUnproven = 16;
// SQZ_STATS_EVERY_MAX's default: the longest interval whatever the margin
// says (src/tuner/README.md section 10 says why it is bounded, and why here).
inline constexpr uint32_t kStatsEveryBound = 256;

// The decision's margin, tracked over the exchanges of one buffer.
//
// The selector keeps the chosen plan P until a candidate c scores more than
// (1 + h) times it (h: its hysteresis). With score = gain / (t + C), t the
// candidate's own time and C the time every candidate shares (the rest of
// the step and the statistics' share of a call), c is that far from taking
// over:
//   gap_c = ln((1 + h) score_P / score_c)
//         = ln((1 + h) gain_P / gain_c) + ln((t_c + C) / (t_P + C)).
// The second term lies between ln(t_c / t_P) (C = 0) and 0 (C large), so
//   w_c = ln((1 + h) gain_P / gain_c) + min(0, ln(t_c / t_P))
// is the gap whatever C does. Where w_c > 0, only a change of the gains'
// ratio (the statistics) can let c take over: the margin is w_c against
// how fast ln(gain_P / gain_c) moved. Otherwise the gap itself and how fast
// it moved. Moved: between two exchanges d calls apart, |change| / d, the
// faster of the last two (one is across a pair's single call, the other
// across the interval). c cannot take over within gap / rate calls if it
// keeps moving no faster; the margin is the least of these over c.
class DecisionMargin {
 public:
  // After the selector's choice from statistics taken at the buffer's call
  // `call`; commonSeconds: the statistics' share of a call included in
  // every candidate's time (0 when the cost is not time). Returns the calls
  // the margin covers (0 when unknown: the plan changed, a candidate is new,
  // or a score is not a positive finite number; +infinity when nothing
  // that could change the choice moves).
  double update(const Plan& plan, double hysteresis, uint64_t call, double commonSeconds = 0);
  // The value the last update returned.
  double calls() const { return calls_; }

 private:
  struct Gap {
    double full = 0;       // gap_c at this exchange
    double worst = 0;      // w_c
    double gains = 0;      // ln(gain_P / gain_c)
    double rate = 0;       // how fast what bounds it moved, per call
    bool haveRate = false;
  };
  std::string plan_;  // the plan the gaps are measured from (empty: none)
  uint64_t call_ = 0;
  double calls_ = 0;
  std::map<std::string, Gap> gaps_;
};

// The statistics interval after a choice: 1 when the plan changed (or
// maxEvery <= 1), else twice `every`, capped at the interval where
// statsSeconds is kStatsShare of planSeconds (no cap from it when
// planSeconds <= 0), at kStatsEveryUnproven unless
// marginCalls covers more, and at maxEvery.
uint32_t nextStatsEvery(uint32_t every, bool planChanged, double statsSeconds, double planSeconds, uint32_t maxEvery,
                        double marginCalls = 0);

}  // namespace sqz
