// The statistics cadence (src/tuner/stats_cadence.h): the decision's margin
// in calls, and the interval it allows, against numbers computed by hand
// (in the comments; h = 0.05, the selector's default hysteresis).
#include "src/tuner/stats_cadence.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "src/tuner/plan_name.h"

namespace sqz {
namespace {

constexpr double kH = 0.05;
constexpr double kInf = std::numeric_limits<double>::infinity();

// A candidate as the selector scores it: gain / (own time + shared time).
ScoredCandidate scored(const std::string& name, double gain, double own, double shared) {
  ScoredCandidate c;
  c.candidate.spec = parsePlanName(name);
  c.gain = gain;
  c.cost.cost = c.cost.seconds = own;
  c.score = gain / (own + shared);
  return c;
}

Plan timed(const ScoredCandidate& chosen, const std::vector<ScoredCandidate>& others, bool changed = false) {
  Plan p;
  p.chosen = chosen;
  p.ranked.push_back(chosen);
  for (const ScoredCandidate& c : others) p.ranked.push_back(c);
  p.changed = changed;
  return p;
}

// A ranking as the selector leaves it: `chosen` first, then the others with
// their scores (no times: only the gaps themselves count, as where the
// shared time could close them).
Plan ranking(const std::string& chosen, double score, const std::vector<std::pair<std::string, double>>& others,
             bool changed = false) {
  Plan p;
  auto scored = [](const std::string& name, double s) {
    ScoredCandidate c;
    c.candidate.spec = parsePlanName(name);
    c.score = s;
    c.gain = 1;
    return c;
  };
  p.chosen = scored(chosen, score);
  p.ranked.push_back(p.chosen);
  for (const auto& [name, s] : others) p.ranked.push_back(scored(name, s));
  p.changed = changed;
  return p;
}

// qa2a:q2 at 100 holds; qring:q2's score moves 98 -> 98.1 in one call;
// qring:q4 (50) does not move.
//   gap(98)   = ln(105 / 98)   = 0.0689929
//   gap(98.1) = ln(105 / 98.1) = 0.0679730, moved 0.0010199 in one call
//   margin = 0.0679730 / 0.0010199 = 66.6475 calls
TEST(StatsCadence, MarginIsTheCallsUntilARunnerUpCouldTakeOver) {
  DecisionMargin m;
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98}, {"qring:q4", 50}}, true), kH, 10), 0.0)
      << "a new plan has no history";
  EXPECT_NEAR(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.1}, {"qring:q4", 50}}), kH, 11), 66.6475, 1e-3);
  EXPECT_NEAR(m.calls(), 66.6475, 1e-3);
  // 16 calls later, nothing moved: the faster of the last two rates
  // (0.0010199 a call) still counts.
  EXPECT_NEAR(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.1}, {"qring:q4", 50}}), kH, 27), 66.6475, 1e-3);
  // Still nothing: no score moves, so nothing can take over.
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.1}, {"qring:q4", 50}}), kH, 28), kInf);
  // The same movement spread over 8 calls covers 8 times as many calls:
  // 98.1 -> 98.2: gap ln(105 / 98.2) = 0.0669541, moved 0.0010189 in 8 calls.
  EXPECT_NEAR(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.2}, {"qring:q4", 50}}), kH, 36),
              0.0669541 / (0.0010189 / 8), 0.1);
}

// The interval: doubling, capped at the share rule (statistics 10 ms
// against a 1 ms plan: ceil(0.010 / (0.02 * 0.001)) = 500 calls), at 16
// without a margin, at the margin's calls, and at SQZ_STATS_EVERY_MAX.
TEST(StatsCadence, StableDecisionLengthensTheInterval) {
  EXPECT_EQ(nextStatsEvery(8, false, 0.010, 0.001, 256, 0), 16u);
  EXPECT_EQ(nextStatsEvery(16, false, 0.010, 0.001, 256, 0), 16u) << "no margin: the share rule's 16";
  EXPECT_EQ(nextStatsEvery(16, false, 0.010, 0.001, 256, 66.6475), 32u);
  EXPECT_EQ(nextStatsEvery(32, false, 0.010, 0.001, 256, 66.6475), 64u);
  EXPECT_EQ(nextStatsEvery(64, false, 0.010, 0.001, 256, 66.6475), 66u) << "as far as the margin covers";
  EXPECT_EQ(nextStatsEvery(128, false, 0.010, 0.001, 256, kInf), 256u);
  EXPECT_EQ(nextStatsEvery(256, false, 0.010, 0.001, 256, kInf), 256u) << "SQZ_STATS_EVERY_MAX bounds it";
  EXPECT_EQ(nextStatsEvery(16, false, 0.010, 0.001, 16, kInf), 16u) << "SQZ_STATS_EVERY_MAX=16: the old rule";
  EXPECT_EQ(nextStatsEvery(16, false, 0.010, 0.001, 1, kInf), 1u) << "SQZ_STATS_EVERY_MAX=1: every call";
  EXPECT_EQ(nextStatsEvery(64, true, 0.010, 0.001, 256, kInf), 1u) << "the plan changed";
  // 10 ms against 37 ms: ceil(0.010 / (0.02 * 0.037)) = 14, whatever the margin.
  EXPECT_EQ(nextStatsEvery(8, false, 0.010, 0.037, 256, kInf), 14u);
  // A margin that is not a number counts as none.
  EXPECT_EQ(nextStatsEvery(16, false, 0.010, 0.001, 256, std::nan("")), 16u);
  // A plan priced at nothing or less (a link's credit): the margin and the
  // bound decide, as for a very cheap plan; it went back to every call.
  EXPECT_EQ(nextStatsEvery(46, false, 0.010, 0.0, 256, 95.8), 92u);
  EXPECT_EQ(nextStatsEvery(46, false, 0.010, -1e-6, 256, 0), 16u);
}

// qring:q2 inside the hysteresis band (104.5 of the 105 it needs), moving
// 104.5 -> 104.8 in one call:
//   gap = ln(105 / 104.8) = 0.0019066, moved 0.0028667: margin 0.6651 calls.
// The interval is the share rule's, as without a margin.
TEST(StatsCadence, CloseCallKeepsTheCurrentInterval) {
  DecisionMargin m;
  m.update(ranking("qa2a:q2", 100, {{"qring:q2", 104.5}}, true), kH, 10);
  const double margin = m.update(ranking("qa2a:q2", 100, {{"qring:q2", 104.8}}), kH, 11);
  EXPECT_NEAR(margin, 0.6651, 1e-3);
  EXPECT_EQ(nextStatsEvery(16, false, 0.010, 0.001, 256, margin), 16u);
  EXPECT_EQ(nextStatsEvery(4, false, 0.010, 0.001, 256, margin), nextStatsEvery(4, false, 0.010, 0.001, 256, 0));
  EXPECT_EQ(nextStatsEvery(4, false, 0.010, 0.001, 256, margin), 8u);
}

// After a stable stretch (margin unbounded, interval 128), the next exchange
// (128 calls on) finds qring:q2 at 104.5:
//   gap = ln(105 / 104.5) = 0.0047733, moved 0.0679730 - 0.0047733 = 0.0631997
//   in 128 calls: margin 0.0047733 / (0.0631997 / 128) = 9.6674 calls,
// so the interval drops to the share rule's 16; when qring:q2 then passes
// 105 the plan changes and the statistics go on every call.
TEST(StatsCadence, ChangedGradientBringsTheIntervalBack) {
  DecisionMargin m;
  m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.1}}, true), kH, 10);
  m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.1}}), kH, 11);
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98.1}}), kH, 27), kInf);
  EXPECT_EQ(nextStatsEvery(64, false, 0.010, 0.001, 256, m.calls()), 128u);
  const double margin = m.update(ranking("qa2a:q2", 100, {{"qring:q2", 104.5}}), kH, 155);
  EXPECT_NEAR(margin, 9.6674, 1e-3);
  EXPECT_EQ(nextStatsEvery(128, false, 0.010, 0.001, 256, margin), 16u);
  // The runner-up takes over: the selector reports a change.
  EXPECT_EQ(m.update(ranking("qring:q2", 105.5, {{"qa2a:q2", 100}}, true), kH, 156), 0.0);
  EXPECT_EQ(nextStatsEvery(16, true, 0.010, 0.001, 256, m.calls()), 1u);
}

// qa2a:q2 (gain 1, 1 ms) against qring:q2 (gain 1, 1.1 ms): with equal gains
// and a longer time, no shared time lets qring:q2 take over
// (w = ln 1.05 + min(0, ln 1.1) = 0.0487902 > 0), so the rest of the step
// jumping from 1 ms to 5 ms moves nothing that counts. (Counted as a gap,
// that jump would be ln(1.05 * 2.1 / 2) -> ln(1.05 * 6.1 / 6), 0.0323 in
// one call: 2 calls covered.)
// Then qa2a:q2's gain drops to 0.98 over 16 calls (its score is now 0.4%
// under qring:q2's, inside the hysteresis: it stays):
//   w = ln 1.05 + ln 0.98 = 0.0285875, ln(gain ratio) moved 0.0202027 in 16
//   calls: margin 0.0285875 / (0.0202027 / 16) = 22.6405 calls.
TEST(StatsCadence, SharedTimeCannotMoveAChoiceThatDominates) {
  DecisionMargin m;
  m.update(timed(scored("qa2a:q2", 1, 1e-3, 1e-3), {scored("qring:q2", 1, 1.1e-3, 1e-3)}, true), kH, 10);
  EXPECT_EQ(m.update(timed(scored("qa2a:q2", 1, 1e-3, 5e-3), {scored("qring:q2", 1, 1.1e-3, 5e-3)}), kH, 11), kInf);
  EXPECT_NEAR(m.update(timed(scored("qa2a:q2", 0.98, 1e-3, 5e-3), {scored("qring:q2", 1, 1.1e-3, 5e-3)}), kH, 27),
              22.6405, 1e-3);
  // The statistics' share of a call is shared time too: taking 1 ms of it
  // out of every candidate's time changes nothing here.
  DecisionMargin withShare;
  withShare.update(timed(scored("qa2a:q2", 1, 2e-3, 0), {scored("qring:q2", 1, 2.1e-3, 0)}, true), kH, 10, 1e-3);
  EXPECT_EQ(withShare.update(timed(scored("qa2a:q2", 1, 1.5e-3, 0), {scored("qring:q2", 1, 1.6e-3, 0)}), kH, 11,
                             0.5e-3),
            kInf);
}

// qa2a:q2 (gain 1, 2 ms) against a faster candidate with less gain (0.97,
// 1 ms): w = ln 1.05 + ln(1 / 0.97) + ln 0.5 < 0, so a shorter rest of the
// step could let it take over, and the gap itself counts. Rest of the step
// 20 ms -> 18 ms in one call:
//   gap = ln(1.05 * (1 / 0.022) / (0.97 / 0.021)) = 0.0327294
//      -> ln(1.05 * (1 / 0.020) / (0.97 / 0.019)) = 0.0279561
//   margin 0.0279561 / 0.0047733 = 5.8568 calls.
TEST(StatsCadence, SharedTimeCountsWhereItCouldChangeTheChoice) {
  DecisionMargin m;
  m.update(timed(scored("qa2a:q2", 1, 2e-3, 20e-3), {scored("qa2a:q8", 0.97, 1e-3, 20e-3)}, true), kH, 10);
  EXPECT_NEAR(m.update(timed(scored("qa2a:q2", 1, 2e-3, 18e-3), {scored("qa2a:q8", 0.97, 1e-3, 18e-3)}), kH, 11),
              5.8568, 1e-3);
}

// What the margin cannot know is 0 (the share rule alone); a candidate that
// scores nothing cannot take over until it scores.
TEST(StatsCadence, UnknownMarginIsNone) {
  DecisionMargin m;
  m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98}}, true), kH, 10);
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 98}, {"qa2a:q4", 90}}), kH, 11), 0.0)
      << "a candidate without a previous score";
  EXPECT_EQ(m.update(ranking("qring:q2", 100, {{"qa2a:q2", 98}}), kH, 12), 0.0) << "another plan, not flagged";
  Plan forced = ranking("ring", 0, {{"qa2a:q2", 0}});
  forced.exactForced = true;
  EXPECT_EQ(m.update(forced, kH, 13), 0.0) << "non-finite statistics";
  m.update(ranking("qa2a:q2", 100, {{"qring:q2", 0}}, true), kH, 14);
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 0}}), kH, 15), kInf);
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {{"qring:q2", 90}}), kH, 16), 0.0) << "it starts to score";
  // Only one candidate: nothing can take over.
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {}, true), kH, 17), 0.0) << "a new plan";
  EXPECT_EQ(m.update(ranking("qa2a:q2", 100, {}), kH, 18), kInf);
}

}  // namespace
}  // namespace sqz
