// The selection math on synthetic curves and statistics, with answers
// computed by hand in the comments.
#include "src/tuner/selector.h"

#include <gtest/gtest.h>

#include <cmath>

#include "collectives/gather_allreduce.h"
#include "collectives/sparse_allreduce.h"
#include "kernels/wire_format.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/allreduce_shapes.h"

namespace sqz {
namespace {

constexpr double kN = 1 << 20;  // elements (4 MiB of fp32)

// Two ranks on two nodes joined by `tcp`; every codec encodes and decodes
// at 1 GB/s, so compute costs are easy to add up by hand.
Profile linkProfile(LinkCurve tcp, double codecRate = 1e9) {
  Profile p;
  p.setCurve(LinkClass::Tcp, std::move(tcp), "test");
  for (const char* k : {"none", "bf16", "fp16", "q8", "q4", "q2", "q1", "topk", "randk"})
    p.codecs.set(Device::Cpu, k, {codecRate, codecRate, codecRate});
  return p;
}

Topology twoNodes() {
  Topology t;
  t.nodes = 2;
  t.ranksPerNode = 1;
  t.inter = LinkClass::Tcp;
  return t;
}

// sumSq 1; omega(q8, q4, q2, q1) = 0.001, 0.1, 1, 4; the histogram puts
// half the squared norm in the top `heavy` elements, half spread evenly.
GradStats syntheticStats(double n, double heavy, double heavyShare) {
  GradStats s;
  clearStats(&s);
  s.elements = n;
  s.sumSq = 1.0;
  s.quantBlocks = n / kStatsBlockSize;
  s.quantVar[quantWidthIndex(8)] = 0.001;
  s.quantVar[quantWidthIndex(4)] = 0.1;
  s.quantVar[quantWidthIndex(2)] = 1.0;
  s.quantVar[quantWidthIndex(1)] = 4.0;
  s.binCount[200] = heavy;
  s.binSumSq[200] = heavyShare;
  s.binCount[100] = n - heavy;
  s.binSumSq[100] = 1.0 - heavyShare;
  return s;
}

// These tests are about the selection (costs, argmax, hysteresis), so the
// gain is the plain kept fraction of grad_stats.h's gain(), whose numbers
// the comments compute by hand; the progress model has its own tests
// (progress_model_test.cc).
GainOf keptFraction(const GradStats& s) {
  return [&s](const Candidate& c) {
    double g = gain(s, c.spec.codec);
    if (c.spec.hierarchical) g *= gain(s, c.spec.intraCodec);
    return g;
  };
}

Plan chooseOnce(const Profile& p, const GradStats& s, double n = kN,
                std::vector<CodecParams> levels = standardCodecLevels()) {
  CostModel model(p, Device::Cpu);
  Selector sel;
  return sel.choose(allreduceCandidates(n, twoNodes(), levels), s, keptFraction(s), model);
}

TEST(Selector, FastLinkChoosesNoCompression) {
  // 1 ns + 1 PB/s: transfer is free. Exact ring: decode (the additions) of
  // n/2 values = 2 MiB / 1 GB/s = 2.097 ms. Any codec encodes all n values
  // (4 MiB / 1 GB/s = 4.19 ms) before it sends anything.
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-9, 1e15));
  Plan plan = chooseOnce(p, syntheticStats(kN, 1049, 0.5));
  EXPECT_EQ(plan.name(), "ring");
  // (2 MiB lies between the curve's 1 MiB and 4 MiB points: log-log
  // interpolation of a latency+bandwidth line is within 1e-9 s of it here.)
  const double hand = 2 * (1e-9 + 2097152 / 1e15) + 2097152 / 1e9;
  EXPECT_NEAR(plan.chosen.cost.seconds, hand, 1e-9);
  EXPECT_EQ(plan.chosen.gain, 1.0);
}

TEST(Selector, SlowLinkChoosesTheMostAggressiveCodec) {
  // 1 ms + 1 kB/s. ring: 2 steps x 2 MiB = 4194 s, score 1/4194 = 2.4e-4.
  // qa2a:q1: 2 x encodedBytes(q1, n/2) = 2 x 81,984 B = 164 s, gain 1/5,
  // score 1.2e-3. sparse_ag:topk:0.001: K = 1049, one message of 6,432 B
  // (blocked 16-bit indices: 16 block ends + 1049 offsets + 1049 values) =
  // 6.4 s, gain ~ 1/2 (the heavy bin), score 7.8e-2: it wins.
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-3, 1e3));
  const CodecParams topk = parseCodecSpec("topk:0.001");
  EXPECT_EQ(encodedBytes(topk, static_cast<size_t>(kN)), 8464u);
  EXPECT_EQ(encodedBytes(SparseAllreduce::wireCodec(topk), static_cast<size_t>(kN)), 6432u);
  Plan plan = chooseOnce(p, syntheticStats(kN, 1049, 0.5));
  EXPECT_EQ(plan.name(), "sparse_ag:topk:0.001");
  EXPECT_NEAR(plan.chosen.gain, 0.5, 1e-6);
  // (log-log interpolation between the 4 kB and 16 kB points: within 1e-4.)
  EXPECT_NEAR(plan.chosen.cost.transferSeconds, 1e-3 + 6432 / 1e3, 1e-3);
}

TEST(Selector, ConcentratedGradientMakesTinyTopKKeepNearlyEverything) {
  // 1 GB/s link, codecs at 10 GB/s. Spread gradient: q4 (qa2a: encode and
  // decode 0.84 ms, 2 x 0.53 MB on the wire = 1.05 ms; gain 0.909; score
  // 0.48/ms) beats the ring (4.2 ms + 0.2 ms, score 0.23/ms), and top-K at
  // 0.1% keeps under 1%. When 100 values hold all but 1e-6 of the squared
  // norm, top-K at 0.1% keeps 0.999999 of it in 8.5 kB (0.85 ms in all,
  // score 1.2/ms), and wins.
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(10e-6, 1e9), 1e10);
  GradStats spread = syntheticStats(kN, 1049, 0.001);
  GradStats concentrated = syntheticStats(kN, 100, 1.0 - 1e-6);
  const CodecParams topk = parseCodecSpec("topk:0.001");
  EXPECT_GT(gain(concentrated, topk), 0.999);
  EXPECT_LT(gain(spread, topk), 0.01);
  EXPECT_EQ(chooseOnce(p, spread).name(), "qa2a:q4");
  // Either sparse shape carries it; the split one moves fewer bytes here.
  Plan chosen = chooseOnce(p, concentrated);
  EXPECT_EQ(codecName(chosen.chosen.candidate.spec.codec), "topk:0.001") << chosen.name();
}

TEST(Selector, PacketStaircaseChangesTheChoice) {
  // n = 256, two ranks: qa2a sends 2 messages of encodedBytes(chunk of 128):
  // q8: 48 header + 16 (block params, aligned) + 128 codes = 192 B
  // q4: 48 + 16 + 64 = 128 B. Packets of 192 B payload: both 1 packet per
  // message, so q8 (gain 0.999) beats q4 (gain 0.909). At 191 B q8 needs 2
  // packets per message: score 0.999/4 = 0.25 < q4's 0.909/2 = 0.45.
  const double n = 256;
  const std::vector<CodecParams> levels = {parseCodecSpec("q8"), parseCodecSpec("q4")};
  EXPECT_EQ(encodedBytes(levels[0], 128), 192u);
  EXPECT_EQ(encodedBytes(levels[1], 128), 128u);
  GradStats s = syntheticStats(n, 1, 0.5);
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-3, 1e3));
  p.costModel.kind = WireCostModel::Kind::Packets;
  p.costModel.costPerPacket = 1;
  p.costModel.payloadBytes = 192;
  Plan at192 = chooseOnce(p, s, n, levels);
  EXPECT_EQ(at192.name(), "qa2a:q8");
  EXPECT_DOUBLE_EQ(at192.chosen.cost.cost, 2.0);
  p.costModel.payloadBytes = 191;
  Plan at191 = chooseOnce(p, s, n, levels);
  EXPECT_EQ(at191.name(), "qa2a:q4");
  EXPECT_DOUBLE_EQ(at191.chosen.cost.cost, 2.0);
  // Bits: cost is bytes sent: q8 384 vs q4 256: q4 (0.909/256 > 0.999/384).
  p.costModel.kind = WireCostModel::Kind::Bits;
  Plan bits = chooseOnce(p, s, n, levels);
  EXPECT_EQ(bits.name(), "qa2a:q4");
  EXPECT_DOUBLE_EQ(bits.chosen.cost.cost, 256.0);
}

TEST(Selector, HysteresisKeepsThePreviousChoiceWithinTheMargin) {
  // Bits cost, n = 256: score(q8) = g8 / 384, score(q4) = g4 / 256.
  const double n = 256;
  const std::vector<CodecParams> levels = {parseCodecSpec("q8"), parseCodecSpec("q4")};
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-3, 1e3));
  p.costModel.kind = WireCostModel::Kind::Bits;
  CostModel model(p, Device::Cpu);
  Selector sel(0.05);
  auto cands = allreduceCandidates(n, twoNodes(), levels);
  GradStats s = syntheticStats(n, 1, 0.5);
  // g4 = 1/1.1: q4 0.00355 > q8 0.00260.
  EXPECT_EQ(sel.choose(cands, s, keptFraction(s), model).name(), "qa2a:q4");
  // g4 = 0.64: q4 0.0025, q8 0.0026016: q8 better by 4.1% < 5%: stay.
  s.quantVar[quantWidthIndex(4)] = 1 / 0.64 - 1;
  Plan stay = sel.choose(cands, s, keptFraction(s), model);
  EXPECT_EQ(stay.ranked[0].candidate.name(), "qa2a:q8");
  EXPECT_EQ(stay.name(), "qa2a:q4");
  EXPECT_FALSE(stay.changed);
  // g4 = 0.6: q4 0.00234, q8 better by 11%: switch.
  s.quantVar[quantWidthIndex(4)] = 1 / 0.6 - 1;
  Plan sw = sel.choose(cands, s, keptFraction(s), model);
  EXPECT_EQ(sw.name(), "qa2a:q8");
  EXPECT_TRUE(sw.changed);
}

// A time score divides by the call plus the rest of the step. On the first
// call the rest is not measured yet (0), so the cheapest call wins by its
// own time; the next choice, with the step known, must not be held to it
// by the hysteresis, while a choice made knowing the step still is.
TEST(Selector, AChoiceMadeBeforeTheStepWasMeasuredIsNotHeld) {
  const double n = 256;
  const std::vector<CodecParams> levels = {parseCodecSpec("q8"), parseCodecSpec("q4")};
  // Transfer-bound (1 kB/s): q8's call takes about twice q4's, exact 1 s.
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-6, 1e3));
  CostModel model(p, Device::Cpu);
  auto cands = allreduceCandidates(n, twoNodes(), levels);
  GradStats s = syntheticStats(n, 1, 0.5);
  s.quantVar[quantWidthIndex(4)] = 1.03 / 0.999 - 1;  // g8 = 0.999 = 1.03 g4
  auto bits = [](const Plan& plan) { return plan.chosen.candidate.spec.codec.bits; };
  auto scoreOf = [](const Plan& plan, int b) {
    for (const ScoredCandidate& c : plan.ranked)
      if (c.candidate.spec.codec.bits == b) return c.score;
    return 0.0;
  };
  const double step = 10.0;  // seconds around the call: q8 leads by under 3%, exact (1 s a call) trails
  Selector uninformed(0.05), informed(0.05);
  EXPECT_EQ(bits(uninformed.choose(cands, s, keptFraction(s), model, "", 0.0)), 4);
  EXPECT_EQ(bits(informed.choose(cands, s, keptFraction(s), model, "", 1e-9)), 4);
  Plan next = uninformed.choose(cands, s, keptFraction(s), model, "", step);
  // q8 is better, by less than the hysteresis.
  ASSERT_GT(scoreOf(next, 8), scoreOf(next, 4));
  ASSERT_LT(scoreOf(next, 8), 1.05 * scoreOf(next, 4));
  EXPECT_EQ(bits(next), 8);
  EXPECT_TRUE(next.changed);
  Plan held = informed.choose(cands, s, keptFraction(s), model, "", step);
  EXPECT_EQ(bits(held), 4);
  EXPECT_FALSE(held.changed);
  // From an informed choice on, the hysteresis holds: at equal gains q4
  // leads by its cheaper call, by under 5%, and the first selector keeps q8.
  s.quantVar[quantWidthIndex(4)] = s.quantVar[quantWidthIndex(8)];
  Plan kept = uninformed.choose(cands, s, keptFraction(s), model, "", step);
  ASSERT_GT(scoreOf(kept, 4), scoreOf(kept, 8));
  ASSERT_LT(scoreOf(kept, 4), 1.05 * scoreOf(kept, 8));
  EXPECT_EQ(bits(kept), 8);
}

TEST(Selector, SameInputsGiveTheSameChoiceAndNonFiniteGoesExact) {
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(10e-6, 1e8));
  GradStats s = syntheticStats(kN, 1049, 0.3);
  Plan a = chooseOnce(p, s), b = chooseOnce(p, s);
  EXPECT_EQ(a.name(), b.name());
  EXPECT_EQ(a.chosen.score, b.chosen.score);
  s.nonFinite = 1;
  Plan exact = chooseOnce(p, s);
  EXPECT_EQ(exact.name(), "ring");
  EXPECT_TRUE(exact.exactForced);
}

TEST(AllreduceShapes, MessageSizesAndStepsMatchTheAlgorithms) {
  const double n = 1 << 20;
  const int N = 8;
  Candidate ring = ringCandidate(n, N, LinkClass::Tcp);
  EXPECT_EQ(ring.stages[0].steps, 14);
  EXPECT_EQ(ring.stages[0].messageBytes, 4.0 * n / N);
  Candidate direct = directCandidate(n, N, LinkClass::Tcp);
  EXPECT_EQ(direct.stages[0].steps, 1);
  EXPECT_EQ(direct.stages[0].messagesPerStep, 7);
  EXPECT_EQ(direct.stages[0].messageBytes, 4.0 * n);
  const CodecParams q4 = parseCodecSpec("q4");
  Candidate qa2a = quantizedA2aCandidate(n, N, LinkClass::Tcp, q4);
  EXPECT_EQ(qa2a.stages[0].steps, 2);
  EXPECT_EQ(qa2a.stages[0].messagesPerStep, 7);
  EXPECT_EQ(qa2a.stages[0].messageBytes, static_cast<double>(encodedBytes(q4, 1 << 17)));
  Candidate cast = codecRingCandidate(n, N, LinkClass::Tcp, parseCodecSpec("bf16"));
  EXPECT_EQ(cast.name(), "qring:bf16");
  EXPECT_EQ(cast.stages[0].messageBytes, 48.0 + 2.0 * (1 << 17));
  Candidate rk = randkCandidate(n, N, LinkClass::Tcp, parseCodecSpec("randk:0.01"));
  EXPECT_EQ(rk.stages[0].steps, 14);
  EXPECT_EQ(rk.stages[0].messageBytes, 4.0 * std::ceil(10486.0 / N));
  const CodecParams topk = parseCodecSpec("topk:0.01");
  Candidate sp = sparseAllgatherCandidate(n, N, LinkClass::Tcp, topk);
  // The host's top-K payload: blocked 16-bit indices (16 blocks of 65536).
  EXPECT_EQ(sp.stages[0].messageBytes, static_cast<double>(encodedBytes(SparseAllreduce::wireCodec(topk), 1 << 20)));
  EXPECT_EQ(sp.stages[0].messageBytes, static_cast<double>(alignWire(48 + alignWire(16 * 4 + 2 * 10486) + 4 * 10486)));
  // gather: the whole buffer's payload to the N - 1 others at once; every
  // rank encodes n and decodes all N payloads (its own too, in rank order).
  const CodecParams rot = parseCodecSpec("sign:rot");
  Candidate g = gatherCandidate(n, N, LinkClass::Tcp, rot, 2);
  EXPECT_EQ(g.name(), "gather:sign:rot");
  EXPECT_EQ(g.stages[0].steps, 1);
  EXPECT_EQ(g.stages[0].messagesPerStep, 7);
  EXPECT_EQ(g.stages[0].messageBytes, static_cast<double>(encodedBytes(rot, 1 << 20)));
  EXPECT_EQ(g.stages[0].linkSharers, 2);
  EXPECT_EQ(g.stages[0].encodeElements, n);
  EXPECT_EQ(g.stages[0].decodeElements, 8.0 * n);
  EXPECT_EQ(g.bytesSentPerRank(), GatherAllreduce::bytesSentPerRank(static_cast<double>(encodedBytes(rot, 1 << 20)), N));

  Topology t;
  t.nodes = 2;
  t.ranksPerNode = 4;
  t.intra = LinkClass::Shm;
  t.inter = LinkClass::Tcp;
  Candidate h = candidateFor(parsePlanName("hier/none/qa2a:q2"), n, t);
  ASSERT_EQ(h.stages.size(), 3u);
  EXPECT_EQ(h.name(), "hier/none/qa2a:q2");
  EXPECT_EQ(h.stages[0].link, LinkClass::Shm);
  EXPECT_EQ(h.stages[0].steps, 3);
  EXPECT_EQ(h.stages[0].messageBytes, 4.0 * n / 4);
  EXPECT_EQ(h.stages[1].link, LinkClass::Tcp);
  EXPECT_EQ(h.stages[1].messagesPerStep, 1);
  EXPECT_EQ(h.stages[1].linkSharers, 4);  // four ranks behind one NIC
  EXPECT_EQ(h.stages[1].messageBytes, static_cast<double>(encodedBytes(parseCodecSpec("q2"), 1 << 17)));
  EXPECT_EQ(h.stages[2].steps, 3);
  // A ring between nodes shares the NIC too: every rank's shard crosses it.
  Candidate hr = candidateFor(parsePlanName("hier/none/qring:q4"), n, t);
  EXPECT_EQ(hr.stages[1].linkSharers, 4);
  EXPECT_EQ(ringCandidate(n, 8, LinkClass::Tcp).stages[0].linkSharers, 1);
}

TEST(AllreduceShapes, StatisticsExchangeGoesToEveryPeerAtOnce) {
  // 4 ranks on 4 nodes at 1 ms + 1 MB/s: 3 x 6304 B (788 doubles) leave in
  // one step, 1 ms + 18.91 ms (log-log interpolation of the line: within 0.2 ms).
  Topology t;
  t.nodes = 4;
  t.ranksPerNode = 1;
  const Stage s = statsExchangeStage(t, sizeof(GradStats));
  EXPECT_EQ(s.link, LinkClass::Tcp);
  EXPECT_EQ(s.steps, 1);
  EXPECT_EQ(s.messagesPerStep, 3);
  EXPECT_EQ(s.messageBytes, 6304.0);
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-3, 1e6));
  EXPECT_NEAR(CostModel(p, Device::Cpu).stageTransferSeconds(s), 1e-3 + 18912 / 1e6, 2e-4);
  t.nodes = 1;  // one rank: nothing to send
  EXPECT_EQ(statsExchangeStage(t, 6304).steps, 0);
}

TEST(Selector, HierarchicalPlanCompressesOnlyTheSlowStage) {
  // 2 nodes x 4 ranks: shared memory at 10 GB/s inside, 10 MB/s between.
  // The intra stages stay exact, the network stage compresses.
  Profile p = linkProfile(LinkCurve::fromLatencyBandwidth(1e-3, 1e7));
  p.setCurve(LinkClass::Shm, LinkCurve::fromLatencyBandwidth(1e-6, 1e10), "test");
  for (const char* k : {"none", "bf16", "fp16", "q8", "q4", "q2", "q1", "topk", "randk"})
    p.codecs.set(Device::Cpu, k, {5e9, 20e9, 5e9});
  Topology t;
  t.nodes = 2;
  t.ranksPerNode = 4;
  t.intra = LinkClass::Shm;
  t.inter = LinkClass::Tcp;
  CostModel model(p, Device::Cpu);
  Selector sel;
  GradStats s = syntheticStats(kN, 1049, 0.05);
  Plan plan = sel.choose(allreduceCandidates(kN, t, standardCodecLevels()), s, keptFraction(s), model);
  EXPECT_EQ(plan.name().rfind("hier/none/", 0), 0u) << plan.name() << "\n" << describeRanking(plan, 8);
  EXPECT_NE(plan.chosen.candidate.spec.codec.kind, CodecKind::None);
}

}  // namespace
}  // namespace sqz
