// Corrections from whole plans timed at calibration (MeasuredPlans): the
// per-element difference between timed and modelled seconds, scaled to the
// call's size; the median of an algorithm's timed plans for its untimed
// ones; a floor of a quarter of the model; and the choice they change.
#include <cmath>
#include <gtest/gtest.h>

#include "kernels/grad_stats.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/allreduce_shapes.h"
#include "src/tuner/cost_model.h"
#include "src/tuner/selector.h"

namespace sqz {
namespace {

constexpr double kTimedAt = 1000;  // elements the plans were timed on

Topology twoNodes() {
  Topology t;
  t.nodes = 2;
  t.ranksPerNode = 1;
  t.inter = LinkClass::Tcp;
  return t;
}

// 1 ms + 1 MB/s between the two nodes; every codec at 1 GB/s.
Profile slowProfile() {
  Profile p;
  p.setCurve(LinkClass::Tcp, LinkCurve::fromLatencyBandwidth(1e-3, 1e6), "test");
  for (const char* k : {"none", "bf16", "fp16", "q8", "q4", "q2", "q1", "topk", "randk"})
    p.codecs.set(Device::Cpu, k, {1e9, 1e9, 1e9});
  return p;
}

Candidate build(const PlanSpec& spec, double n, int elementBytes = 4) {
  return candidateFor(spec, n, twoNodes(), elementBytes);
}

double modelled(const CostModel& m, const std::string& plan, double n) {
  const CostBreakdown b = m.evaluate(build(parsePlanName(plan), n));
  return b.seconds - b.overheadSeconds;
}

// Profile p with `plan` timed at modelled(kTimedAt) + extraAt1000 seconds.
void time(Profile& p, const std::string& plan, double extraAt1000) {
  CostModel m(p, Device::Cpu);
  p.plans.elements = kTimedAt;
  p.plans.seconds[plan] = modelled(m, plan, kTimedAt) + extraAt1000;
}

MeasuredPlans corrections(const Profile& p, const CostModel& m) {
  return MeasuredPlans(p, m, [](const PlanSpec& s, double n, int eb) { return build(s, n, eb); });
}

TEST(MeasuredPlans, TimedPlanCarriesItsCorrectionScaledToTheCall) {
  Profile p = slowProfile();
  time(p, "ring", 0.004);  // 4 ms over the model at 1000 elements: 4 us per element
  CostModel m(p, Device::Cpu);
  MeasuredPlans mp = corrections(p, m);
  ASSERT_FALSE(mp.empty());
  const Candidate ring = build(parsePlanName("ring"), 2000);
  EXPECT_NEAR(mp.extraSeconds(ring, 2000, modelled(m, "ring", 2000)), 0.008, 1e-12);
  EXPECT_NEAR(mp.extraSeconds(ring, 500, modelled(m, "ring", 500)), 0.002, 1e-12);
  // Applied: every candidate's overhead is the statistics pass plus its correction.
  std::vector<Candidate> cands = {ring};
  mp.apply(cands, 2000, m, 0.001);
  EXPECT_NEAR(cands[0].overheadSeconds, 0.009, 1e-12);
  EXPECT_NEAR(m.evaluate(cands[0]).seconds, modelled(m, "ring", 2000) + 0.009, 1e-12);
}

TEST(MeasuredPlans, UntimedPlansTakeTheMedianOfTheirAlgorithmNeverBelowZero) {
  Profile p = slowProfile();
  time(p, "qa2a:q8", 0.001);   // 1 us per element
  time(p, "qa2a:q4", 0.003);   // 3 us
  time(p, "qa2a:q2", 0.002);   // 2 us: the median of {1, 2, 3}
  time(p, "qring:q8", -0.001);  // a ring faster than modelled: its untimed levels get 0, not a discount
  CostModel m(p, Device::Cpu);
  MeasuredPlans mp = corrections(p, m);
  const double n = 4000;
  EXPECT_NEAR(mp.extraSeconds(build(parsePlanName("qa2a:q1"), n), n, 1.0), 2e-6 * n, 1e-12);
  EXPECT_EQ(mp.extraSeconds(build(parsePlanName("qring:q4"), n), n, 1.0), 0.0);
  // An algorithm with no timed plan at all: no correction.
  EXPECT_EQ(mp.extraSeconds(build(parsePlanName("sparse_ag:topk:0.01"), n), n, 1.0), 0.0);
  // The timed ring plan itself keeps its own (negative) correction: -1 us x 4000.
  EXPECT_NEAR(mp.extraSeconds(build(parsePlanName("qring:q8"), n), n, 1.0), -0.004, 1e-12);
  // A hierarchical plan (never timed) takes its inter-node algorithm's median.
  Topology t;
  t.nodes = 2;
  t.ranksPerNode = 2;
  const Candidate hier = candidateFor(parsePlanName("hier/none/qa2a:q4"), n, t);
  EXPECT_NEAR(mp.extraSeconds(hier, n, 1.0), 2e-6 * n, 1e-12);
}

TEST(MeasuredPlans, ACorrectionNeverTakesMoreThanThreeQuartersOfTheModel) {
  Profile p = slowProfile();
  CostModel m(p, Device::Cpu);
  const double model1000 = modelled(m, "qa2a:q4", kTimedAt);
  time(p, "qa2a:q4", -0.9 * model1000);  // timed at a tenth of the model
  MeasuredPlans mp = corrections(p, m);
  const Candidate c = build(parsePlanName("qa2a:q4"), kTimedAt);
  EXPECT_NEAR(mp.extraSeconds(c, kTimedAt, model1000), -0.75 * model1000, 1e-12);
}

// The job's own (small) buffer timed as well: the correction runs through
// zero, the job size and the tiled size, linearly between them and per
// element past the tiled one; with nothing larger timed, it stays flat past
// the job size (per-message and per-phase costs do not grow per element).
TEST(MeasuredPlans, AJobSizeTimingIsInterpolatedTowardsTheTiledOne) {
  Profile p = slowProfile();
  CostModel m(p, Device::Cpu);
  p.plansAtJobSize.elements = 100;
  p.plansAtJobSize.seconds["ring"] = modelled(m, "ring", 100) + 0.003;  // 3 ms over the model at 100 elements
  {
    MeasuredPlans onlyJob = corrections(p, m);
    ASSERT_FALSE(onlyJob.empty());
    const Candidate ring = build(parsePlanName("ring"), 50);
    EXPECT_NEAR(onlyJob.extraSeconds(ring, 50, 1.0), 0.0015, 1e-12);  // 3 ms x 50 / 100
    EXPECT_NEAR(onlyJob.extraSeconds(ring, 100, 1.0), 0.003, 1e-12);
    EXPECT_NEAR(onlyJob.extraSeconds(ring, 100000, 1.0), 0.003, 1e-12);  // flat, not 3 s
  }
  time(p, "ring", 0.012);  // 12 ms over the model at 1000 elements
  MeasuredPlans both = corrections(p, m);
  const Candidate ring = build(parsePlanName("ring"), 50);
  EXPECT_NEAR(both.extraSeconds(ring, 50, 1.0), 0.0015, 1e-12);
  EXPECT_NEAR(both.extraSeconds(ring, 100, 1.0), 0.003, 1e-12);
  EXPECT_NEAR(both.extraSeconds(ring, 400, 1.0), 0.006, 1e-12);  // 3 + (12 - 3) x 300 / 900
  EXPECT_NEAR(both.extraSeconds(ring, 1000, 1.0), 0.012, 1e-12);
  EXPECT_NEAR(both.extraSeconds(ring, 3000, 1.0), 0.036, 1e-12);  // 12 us per element
  // A plan timed at only one of the sizes uses that size alone.
  p.plansAtJobSize.seconds["qa2a:q4"] = modelled(m, "qa2a:q4", 100) - 0.0001;
  MeasuredPlans some = corrections(p, m);
  EXPECT_NEAR(some.extraSeconds(build(parsePlanName("qa2a:q4"), 5000), 5000, 1.0), -0.0001, 1e-12);
  // A "job size" at or above the tiled one adds nothing to it.
  p.plansAtJobSize.elements = 2000;
  MeasuredPlans above = corrections(p, m);
  EXPECT_NEAR(above.extraSeconds(ring, 500, 1.0), 0.006, 1e-12);
}

TEST(MeasuredPlans, StatisticsPassScalesWithTheBufferOrFallsBack) {
  Profile p = slowProfile();
  CostModel m(p, Device::Cpu);
  EXPECT_EQ(corrections(p, m).tuneSeconds(5000, 0.25), 0.25);  // nothing timed
  time(p, "ring", 0.0);
  p.plans.tuneSeconds = 0.002;
  EXPECT_NEAR(corrections(p, m).tuneSeconds(5000, 0.25), 0.01, 1e-12);
}

TEST(MeasuredPlans, TimingsChangeTheChoice) {
  // 1 MB/s, n = 1000, all the squared norm in 10 values: the model prices
  // sparse_ag:topk:0.01 (one 10-pair payload) far below qa2a:q4 and the
  // ring, and top-K keeps everything, so it wins. Timed at 1 s (say, a
  // select that is slow on this CPU), it loses to q4.
  Profile p = slowProfile();
  GradStats s;
  clearStats(&s);
  s.elements = kTimedAt;
  s.sumSq = 1.0;
  s.quantBlocks = kTimedAt / kStatsBlockSize;
  s.quantVar[quantWidthIndex(8)] = 0.001;
  s.quantVar[quantWidthIndex(4)] = 0.01;
  s.quantVar[quantWidthIndex(2)] = 1.0;
  s.quantVar[quantWidthIndex(1)] = 4.0;
  s.binCount[200] = 10;
  s.binSumSq[200] = 1.0;
  s.binCount[0] = kTimedAt - 10;
  const std::vector<CodecParams> levels = {parseCodecSpec("none"), parseCodecSpec("q4"), parseCodecSpec("topk:0.01")};
  auto choose = [&](const Profile& prof) {
    CostModel m(prof, Device::Cpu);
    std::vector<Candidate> cands = allreduceCandidates(kTimedAt, twoNodes(), levels);
    corrections(prof, m).apply(cands, kTimedAt, m, 0.0);
    Selector sel;
    const GainOf kept = [&](const Candidate& c) { return gain(s, c.spec.codec); };
    return sel.choose(cands, s, kept, m).name();
  };
  EXPECT_EQ(choose(p), "sparse_ag:topk:0.01");
  p.plans.elements = kTimedAt;
  p.plans.seconds["sparse_ag:topk:0.01"] = 1.0;
  p.plans.seconds["sparse_split:topk:0.01"] = 1.0;
  EXPECT_EQ(choose(p), "qa2a:q4");
}

// A token-bucket link's credit (hand-computed): at 125 MB/s with 0.5 ms
// of rest of the step, a 256 KiB bucket hands a call min(262144, 62500)
// bytes, so 47 KB (the logistic regression's exact ring on the testbed)
// go at once: 0.376 ms saved of its 0.4 ms transfer.
TEST(LinkCredit, SavesTheCreditedBytesAtTheRateNeverMoreThanTheTransfer) {
  EXPECT_DOUBLE_EQ(linkCreditSavedSeconds(47000, 4e-4, 262144, 125e6, 5e-4), 47000 / 125e6);
  // 0.2 ms of rest refills 25 KB: that much goes at once.
  EXPECT_DOUBLE_EQ(linkCreditSavedSeconds(47000, 4e-4, 262144, 125e6, 2e-4), 25000 / 125e6);
  // A small bucket caps the credit whatever the rest of the step.
  EXPECT_DOUBLE_EQ(linkCreditSavedSeconds(47000, 4e-4, 16384, 125e6, 5e-4), 16384 / 125e6);
  // Never more than the call's transfer time.
  EXPECT_DOUBLE_EQ(linkCreditSavedSeconds(47000, 1e-4, 262144, 125e6, 5e-4), 1e-4);
  // No burst (a NIC), no rest of the step measured yet, nothing sent: nothing saved.
  EXPECT_EQ(linkCreditSavedSeconds(47000, 4e-4, 0, 125e6, 5e-4), 0.0);
  EXPECT_EQ(linkCreditSavedSeconds(47000, 4e-4, 262144, 125e6, 0), 0.0);
  EXPECT_EQ(linkCreditSavedSeconds(0, 4e-4, 262144, 125e6, 5e-4), 0.0);
}

TEST(LinkCredit, AppliedToTheCandidatesStagesOnThatLink) {
  // 1 ms + 1 MB/s between 2 nodes; the ring on 1000 floats sends 2 steps of
  // 2000 B a rank (6 ms in the model). With a 1 MB burst and 10 ms of rest
  // (10 KB of credit) all 4000 B go at once: 4 ms off its time.
  Profile p = slowProfile();
  p.linkBurstBytes = 1e6;
  CostModel m(p, Device::Cpu);
  std::vector<Candidate> cands{build(parsePlanName("ring"), 1000)};
  ASSERT_DOUBLE_EQ(cands[0].bytesSentPerRank(), 4000);
  const double before = m.evaluate(cands[0]).seconds;
  applyLinkCredit(cands, m, LinkClass::Tcp, 0.01);
  EXPECT_NEAR(m.evaluate(cands[0]).seconds, before - 4e-3, 1e-12);
  // Another link class carries none of its bytes; a profile without a burst saves nothing.
  std::vector<Candidate> other{build(parsePlanName("ring"), 1000)};
  applyLinkCredit(other, m, LinkClass::Ib, 0.01);
  EXPECT_DOUBLE_EQ(m.evaluate(other[0]).seconds, before);
  p.linkBurstBytes = 0;
  applyLinkCredit(other, m, LinkClass::Tcp, 0.01);
  EXPECT_DOUBLE_EQ(m.evaluate(other[0]).seconds, before);
}

// The most the credit takes off is the candidate's time outside encoding
// and decoding: the model's transfer time plus its own correction
// (overheadSeconds less the shared part), never more.
TEST(LinkCredit, CappedByTheTransferTimeAndTheCandidatesOwnCorrection) {
  Profile p = slowProfile();
  p.linkBurstBytes = 1e6;
  CostModel m(p, Device::Cpu);
  // 6.32 ms transfer in the model (2 steps of 2000 B, log-log between the
  // curve's 1 and 4 KiB points), 1 ms shared, -4.5 ms correction (the plan
  // timed faster than modelled): 1.82 ms left on the link, so the 4 ms the
  // credited bytes would save is capped there.
  std::vector<Candidate> cands{build(parsePlanName("ring"), 1000)};
  const double transfer = m.evaluate(cands[0]).transferSeconds;
  ASSERT_NEAR(transfer, 2 * 2.024e-3 * std::pow(5.096 / 2.024, std::log(2000.0 / 1024) / std::log(4.0)), 1e-9);
  cands[0].overheadSeconds = 1e-3 - 4.5e-3;
  const double before = m.evaluate(cands[0]).seconds;
  applyLinkCredit(cands, m, LinkClass::Tcp, 0.01, 1e-3);
  EXPECT_NEAR(m.evaluate(cands[0]).seconds, before - (transfer - 4.5e-3), 1e-12);

  // A first segment far faster than the steady rate: 2 steps of 2000 B take
  // 1.95 us each in the model (log-log between 1e-6 s at 1 KiB and 4e-6 s
  // at 4 KiB), while the bytes go at 12288 B / 996 us. With a 400 us
  // correction (the plan's link time, timed) the credit saves all of the
  // 4000 bytes' 324.2 us, where the transfer time alone allowed 3.9 us.
  Profile q = slowProfile();
  q.setCurve(LinkClass::Tcp, LinkCurve({{1024, 1e-6}, {4096, 4e-6}, {16384, 1e-3}}), "test");
  q.linkBurstBytes = 1e6;
  CostModel mq(q, Device::Cpu);
  std::vector<Candidate> ring{build(parsePlanName("ring"), 1000)};
  ASSERT_NEAR(mq.evaluate(ring[0]).transferSeconds, 2 * 1e-6 * 2000 / 1024, 1e-12);
  ring[0].overheadSeconds = 1e-3 + 400e-6;
  const double timed = mq.evaluate(ring[0]).seconds;
  applyLinkCredit(ring, mq, LinkClass::Tcp, 0.01, 1e-3);
  const double rate = 12288 / (1e-3 - 4e-6);
  EXPECT_NEAR(mq.evaluate(ring[0]).seconds, timed - 4000 / rate, 1e-12);
}

// The share of a plan's credit that its call got, from the plan's price
// without the credit (6 ms) and with all of it (2 ms) and the measured time.
TEST(LinkCredit, RealizedIsTheShareOfTheCreditTheCallGot) {
  EXPECT_DOUBLE_EQ(linkCreditRealized(6e-3, 2e-3, 2e-3), 1.0);   // all of it
  EXPECT_DOUBLE_EQ(linkCreditRealized(6e-3, 2e-3, 6e-3), 0.0);   // none: the link was emptied
  EXPECT_NEAR(linkCreditRealized(6e-3, 2e-3, 5e-3), 0.25, 1e-12);  // 1 ms of the 4
  EXPECT_NEAR(linkCreditRealized(6e-3, 2e-3, 3e-3), 0.75, 1e-12);
  // Beyond either price it is clamped: faster than credited is no more than
  // all of the credit, slower than uncredited no less than none.
  EXPECT_DOUBLE_EQ(linkCreditRealized(6e-3, 2e-3, 1e-3), 1.0);
  EXPECT_DOUBLE_EQ(linkCreditRealized(6e-3, 2e-3, 9e-3), 0.0);
  // A credit under a tenth of the price is no evidence either way (0.5 ms of
  // 6 ms; 0.7 ms is: (6 - 5.8) / 0.7), nor is a call with nothing measured.
  EXPECT_TRUE(std::isnan(linkCreditRealized(6e-3, 5.5e-3, 5.5e-3)));
  EXPECT_NEAR(linkCreditRealized(6e-3, 5.3e-3, 5.8e-3), 0.2 / 0.7, 1e-9);
  EXPECT_TRUE(std::isnan(linkCreditRealized(6e-3, 2e-3, 0)));
  EXPECT_TRUE(std::isnan(linkCreditRealized(0, 0, 1e-3)));
}

}  // namespace
}  // namespace sqz
