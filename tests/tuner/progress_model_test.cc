// Each term of the gain model (src/tuner/progress_model.h, derived in
// src/tuner/README.md) against numbers computed by hand in the comments,
// and the estimators against synthetic ranks whose signal, noise, drift
// and residual are known.
#include "src/tuner/progress_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu_codec.h"
#include "src/codec/codec_spec.h"

namespace sqz {
namespace {

PlanSpec plan(const char* algorithm, const char* codec) {
  PlanSpec p;
  p.algorithm = algorithm;
  p.codec = parseCodecSpec(codec);
  return p;
}

// The inputs the hand computations below use: noise 1, a measured drift
// of 0.4 per call, momentum 0.9 (M = 1.216 / 0.136 at psi = 0.4).
ProgressInputs handInputs() {
  ProgressInputs in;
  in.nu = 1.0;
  in.drift = 0.4;
  in.driftKnown = true;
  in.momentum = 0.9;
  return in;
}

TEST(ProgressModel, NoiseScaleFromSketchSums) {
  // N = 4, S = 40, Q = 16: ||G||^2 = (40 - 16) / (4 * 3) = 2;
  // nu = (4 * 16 - 40) / (4 * (40 - 16)) = 24 / 96 = 0.25.
  NoiseScale n = noiseScale(40, 16, 4);
  EXPECT_TRUE(n.known);
  EXPECT_DOUBLE_EQ(n.signalSq, 2.0);
  EXPECT_DOUBLE_EQ(n.noise, 0.25);
  // Identical ranks (S = N Q): no noise.
  EXPECT_DOUBLE_EQ(noiseScale(64, 16, 4).noise, 0.0);
  // S <= Q: no visible signal; one rank: nothing to compare.
  EXPECT_FALSE(noiseScale(16, 16, 4).known);
  EXPECT_FALSE(noiseScale(40, 16, 1).known);
}

TEST(ProgressModel, DriftAndCorrelation) {
  ProgressInputs in;
  in.nu = 1.0;
  // Unknown drift: the best step for noise 1 moves G by 1/sqrt(2): drift 0.5.
  EXPECT_DOUBLE_EQ(driftPerCall(in), 0.5);
  in.driftKnown = true;
  in.drift = 0.4;
  EXPECT_DOUBLE_EQ(driftPerCall(in), 0.4);
  // (1 - 0.4 / 2) / (1 + 1) = 0.4.
  EXPECT_DOUBLE_EQ(callCorrelation(in), 0.4);
}

TEST(ProgressModel, MomentumFactor) {
  // (1 + mu)(1 - mu psi) / ((1 - mu)(1 + mu psi)) at mu = 0.9, psi = 0.4:
  // 1.9 * 0.64 / (0.1 * 1.36) = 8.9412.
  EXPECT_NEAR(momentumFactor(0.9, 0.4), 1.216 / 0.136, 1e-12);
  EXPECT_DOUBLE_EQ(momentumFactor(0.0, 0.4), 1.0);             // plain SGD
  EXPECT_NEAR(momentumFactor(0.9, 1.0), 1.0, 1e-12);           // a gradient that never changes
  EXPECT_NEAR(momentumFactor(0.9, 0.0), 19.0, 1e-12);          // uncorrelated calls: (1 + mu) / (1 - mu)
  EXPECT_GT(momentumFactor(0.99, 0.0), momentumFactor(0.9, 0.0));
}

TEST(ProgressModel, LagPenaltyAndGain) {
  ProgressInputs in = handInputs();
  // tau = 2: 0.4 * 8.9412 * 4 / 2 = 7.1529; gain 2 / (2 + 7.1529) = 0.21851.
  const double m = 1.216 / 0.136;
  EXPECT_NEAR(lagPenalty(in, 2.0), 0.4 * m * 4 / 2, 1e-12);
  EXPECT_NEAR(progressGain(in, 2.0), 2 / (2 + 0.4 * m * 2), 1e-12);
  EXPECT_DOUBLE_EQ(progressGain(in, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(progressGain(in, INFINITY), 0.0);
  // Without momentum: 0.4 * 1 * 4 / 2 = 0.8; gain 2 / 2.8.
  in.momentum = 0.0;
  EXPECT_NEAR(progressGain(in, 2.0), 2 / 2.8, 1e-12);
  // More noise hides the same lag: nu = 3: psi = 0.8 / 4 = 0.2, penalty
  // 0.4 * 4 / 4 = 0.4, gain 4 / 4.4.
  in.nu = 3.0;
  EXPECT_NEAR(progressGain(in, 2.0), 4 / 4.4, 1e-12);
}

TEST(ProgressModel, OwedCallsAndEncodingPaths) {
  // owed' = a (owed + 1): a / (1 - a).
  EXPECT_DOUBLE_EQ(owedCalls(0.0), 0.0);
  EXPECT_DOUBLE_EQ(owedCalls(0.5), 1.0);
  EXPECT_DOUBLE_EQ(owedCalls(0.8), 4.0);
  EXPECT_TRUE(std::isinf(owedCalls(1.0)));
  // N = 4: qa2a 3 ranks' own + the owner's sum of 4 = 7; qring 1+2+3+4 =
  // 10; each rank's own: 4.
  EXPECT_DOUBLE_EQ(encodingSumK("qa2a", 4), 7.0);
  EXPECT_DOUBLE_EQ(encodingSumK("qring", 4), 10.0);
  EXPECT_DOUBLE_EQ(encodingSumK("sparse_ag", 4), 4.0);
  EXPECT_DOUBLE_EQ(encodingSumK("sparse_split", 4), 4.0);
}

// 1000 elements, sumSq 1: 10 values hold half of it (bin 200), the rest
// the other half; the sign codec's error is 20% along x.
GradStats handStats() {
  GradStats s;
  clearStats(&s);
  s.elements = 1000;
  s.sumSq = 1.0;
  s.binCount[200] = 10;
  s.binSumSq[200] = 0.5;
  s.binCount[100] = 990;
  s.binSumSq[100] = 0.5;
  s.signKept = 0.6;
  s.signAligned = 0.2;
  s.quantVar[quantWidthIndex(2)] = 0.3;
  return s;
}

TEST(ProgressModel, PredictedLagPerCodecAndAlgorithm) {
  const GradStats s = handStats();
  // top-K 1% keeps the 10 largest = 0.5: a = 0.5, owed 1 call; each rank
  // encodes its own: tau = 1 * 4 / 4 = 1.
  EXPECT_NEAR(predictedLag(s, plan("sparse_ag", "topk:0.01"), 4), 1.0, 1e-12);
  EXPECT_NEAR(predictedLag(s, plan("sparse_split", "topk:0.01"), 4), 1.0, 1e-12);
  // sign: a = 0.2, owed 0.25; qa2a: 0.25 * 7 / 4 = 0.4375; qring: 0.625.
  EXPECT_NEAR(predictedLag(s, plan("qa2a", "sign"), 4), 0.4375, 1e-12);
  EXPECT_NEAR(predictedLag(s, plan("qring", "sign"), 4), 0.625, 1e-12);
  // Stochastic rounding owes nothing along x; one stochastic bit is not
  // contractive; exact owes nothing.
  EXPECT_DOUBLE_EQ(predictedLag(s, plan("qa2a", "q2"), 4), 0.0);
  EXPECT_TRUE(std::isinf(predictedLag(s, plan("qa2a", "q1"), 4)));
  EXPECT_DOUBLE_EQ(predictedLag(s, plan("ring", "none"), 4), 0.0);
}

TEST(ProgressModel, PlanGainCombinesTheTerms) {
  const GradStats s = handStats();
  const ProgressInputs in = handInputs();
  const double m = 1.216 / 0.136;
  // sparse_ag:topk:0.01: tau 1: penalty 0.4 * m / 2; gain 2 / (2 + 0.2 m).
  EXPECT_NEAR(planGain(s, plan("sparse_ag", "topk:0.01"), 4, in), 2 / (2 + 0.2 * m), 1e-12);
  // A measured correction of 2 doubles tau: penalty x 4.
  EXPECT_NEAR(planGain(s, plan("sparse_ag", "topk:0.01"), 4, in, 2.0), 2 / (2 + 0.8 * m), 1e-12);
  EXPECT_DOUBLE_EQ(planGain(s, plan("qa2a", "q2"), 4, in), 1.0);
  EXPECT_DOUBLE_EQ(planGain(s, plan("qa2a", "q1"), 4, in), 0.0);
  // Random-K 1% rescaled, without error feedback: omega = 1/0.01 - 1 = 99,
  // gain (1 + nu) / ((1 + nu)(1 + 99)) = 0.01.
  EXPECT_NEAR(planGain(s, plan("randk", "randk:0.01:rescale"), 4, in), 0.01, 1e-12);
  // Non-finite statistics: no codec applies.
  GradStats bad = s;
  bad.nonFinite = 1;
  EXPECT_DOUBLE_EQ(planGain(bad, plan("ring", "none"), 4, in), 0.0);
}

TEST(ProgressModel, SignErrorCommonToAllRanks) {
  const GradStats s = handStats();
  // Squared error 1 - 0.6 = 0.4 of sumSq, 0.2^2 = 0.04 of it along x:
  // 0.36 across, sqrt 0.6 per encoding of one rank's share of the signal;
  // summed over the encodings a coordinate passes (encodingSumK) over N = 4:
  // gather 0.6 * 4 / 4 = 0.6, qa2a 0.6 * 7 / 4 = 1.05, qring 0.6 * 10 / 4 = 1.5.
  EXPECT_NEAR(commonErrorLag(s, plan("gather", "sign"), 4), 0.6, 1e-12);
  EXPECT_NEAR(commonErrorLag(s, plan("qa2a", "sign"), 4), 1.05, 1e-12);
  EXPECT_NEAR(commonErrorLag(s, plan("qring", "sign"), 4), 1.5, 1e-12);
  // It does not shrink with more ranks: gather on 16 ranks is still 0.6
  // (stochastic rounding's error would average down over them).
  EXPECT_NEAR(commonErrorLag(s, plan("gather", "sign"), 16), 0.6, 1e-12);
  // Other codecs err independently on each rank, or lose the unsent part (tau).
  EXPECT_DOUBLE_EQ(commonErrorLag(s, plan("qa2a", "q2"), 4), 0.0);
  EXPECT_DOUBLE_EQ(commonErrorLag(s, plan("sparse_ag", "topk:0.01"), 4), 0.0);
  EXPECT_DOUBLE_EQ(commonErrorLag(s, plan("ring", "none"), 4), 0.0);
  // A block the sign sends exactly (kept = sumSq): nothing in common.
  GradStats exact = s;
  exact.signKept = 1.0;
  exact.signAligned = 0.0;
  EXPECT_DOUBLE_EQ(commonErrorLag(exact, plan("gather", "sign"), 4), 0.0);
  // In the gain, with the lag along G (tau = 0.4375 on qa2a, section 3):
  // tau^2 + 1.05^2 = 0.19140625 + 1.1025 = 1.29390625; penalty 0.4 * M *
  // 1.29390625 / 2 with M = 1.216 / 0.136; gain 2 / (2 + penalty).
  const ProgressInputs in = handInputs();
  const double m = 1.216 / 0.136;
  EXPECT_NEAR(planGain(s, plan("qa2a", "sign"), 4, in), 2 / (2 + 0.2 * m * 1.29390625), 1e-12);
  // gather: tau = 0.25 * 4 / 4 = 0.25, 0.0625 + 0.36 = 0.4225.
  EXPECT_NEAR(planGain(s, plan("gather", "sign"), 4, in), 2 / (2 + 0.2 * m * 0.4225), 1e-12);
  // A measured correction scales tau only: 2 * 0.4375 = 0.875, 0.765625 + 1.1025.
  EXPECT_NEAR(planGain(s, plan("qa2a", "sign"), 4, in, 2.0), 2 / (2 + 0.2 * m * 1.868125), 1e-12);
}

TEST(ProgressModel, RotatedSignErrsAlikeOnlyAveragedOverKeys) {
  GradStats s = handStats();
  s.signRotCommon = 0.09;
  s.signRotError = 0.5;
  // The error common to all keys, 0.09 of sumSq: sqrt 0.09 = 0.3 per
  // encoding; gather 0.3 * 4 / 4, qa2a 0.3 * 7 / 4 = 0.525, on 16 ranks
  // still 0.3. The plain sign keeps its deterministic error's 0.6.
  EXPECT_NEAR(commonErrorLag(s, plan("gather", "sign:rot"), 4), 0.3, 1e-12);
  EXPECT_NEAR(commonErrorLag(s, plan("qa2a", "sign:rot"), 4), 0.525, 1e-12);
  EXPECT_NEAR(commonErrorLag(s, plan("gather", "sign:rot"), 16), 0.3, 1e-12);
  EXPECT_NEAR(commonErrorLag(s, plan("gather", "sign"), 4), 0.6, 1e-12);
  // Blocks without a dominant value: nothing in common.
  GradStats flat = s;
  flat.signRotCommon = 0.0;
  EXPECT_DOUBLE_EQ(commonErrorLag(flat, plan("gather", "sign:rot"), 4), 0.0);
  // In the gain (tau along G = 0.25 on gather, as the plain sign's):
  // 0.0625 + 0.09 = 0.1525; penalty 0.4 * M * 0.1525 / 2.
  const ProgressInputs in = handInputs();
  const double m = 1.216 / 0.136;
  EXPECT_NEAR(planGain(s, plan("gather", "sign:rot"), 4, in), 2 / (2 + 0.2 * m * 0.1525), 1e-12);
  // The rest of one key's error, 0.5 - 0.09 = 0.41 of sumSq, is random
  // across keys: rounding-like noise for Adam's second moment (README
  // section 7); q2's is its quantVar 0.3 times its residual's range factor
  // 9, 2.7; the plain sign and top-K: none.
  EXPECT_NEAR(encodingNoise(s, parseCodecSpec("sign:rot")), 0.41, 1e-12);
  EXPECT_NEAR(encodingNoise(s, parseCodecSpec("q2")), 2.7, 1e-12);
  EXPECT_DOUBLE_EQ(encodingNoise(s, parseCodecSpec("sign")), 0.0);
  EXPECT_DOUBLE_EQ(encodingNoise(s, parseCodecSpec("topk:0.01")), 0.0);
  // Update noise at nu = 0: 2 * 0.41 * 4 / 16 = 0.205 on gather; qa2a's
  // owner re-encodes the sum: 2 * 0.41 * 19 / 16 = 0.97375.
  EXPECT_NEAR(updateNoiseRatio(s, plan("gather", "sign:rot"), 4, 0.0), 0.205, 1e-12);
  EXPECT_NEAR(updateNoiseRatio(s, plan("qa2a", "sign:rot"), 4, 0.0), 0.97375, 1e-12);
  // With Adam the gain takes that noise's factor (the sign keeps its
  // residual under Adam: two residuals): at nu = 1, gather's noise is 2 *
  // 0.41 * 4 / 16 (kappa_1 = 1) = 0.205, 2.05e-4 per element; bin 200: u =
  // 0.02, r = 0.99491; bin 100: u = 2.0202e-4, r = sqrt(2.0202e-4 /
  // 4.0702e-4) = 0.70451: A = (2.2361 * 0.99491 + 22.249 * 0.70451) /
  // 24.485 = 0.73103; times the lag part above.
  ProgressInputs adam = in;
  adam.optimizer = OptimizerKind::Adam;
  EXPECT_NEAR(updateNoiseRatio(s, plan("gather", "sign:rot"), 4, 1.0), 0.205, 1e-12);
  EXPECT_NEAR(planGain(s, plan("gather", "sign:rot"), 4, adam), 2 / (2 + 0.2 * m * 0.1525) * 0.7310345486, 1e-9);
}

TEST(ProgressModel, EncodingSecondMoments) {
  // kappa_k = k (k + N nu) / (1 + N nu). N = 4, nu = 0: kappa_k = k^2:
  // qa2a 3 * 1 + 16 = 19, qring 1 + 4 + 9 + 16 = 30, each rank's own 4.
  EXPECT_DOUBLE_EQ(encodingSecondMoments("qa2a", 4, 0.0), 19.0);
  EXPECT_DOUBLE_EQ(encodingSecondMoments("qring", 4, 0.0), 30.0);
  EXPECT_DOUBLE_EQ(encodingSecondMoments("gather", 4, 0.0), 4.0);
  // nu = 1 (N nu = 4): kappa = 1, 12/5, 21/5, 32/5: qa2a 3 + 6.4 = 9.4,
  // qring 1 + 2.4 + 4.2 + 6.4 = 14.
  EXPECT_NEAR(encodingSecondMoments("qa2a", 4, 1.0), 9.4, 1e-12);
  EXPECT_NEAR(encodingSecondMoments("qring", 4, 1.0), 14.0, 1e-12);
}

TEST(ProgressModel, UpdateNoiseOfStochasticRounding) {
  const GradStats s = handStats();
  // q2: quantVar / sumSq = 0.3 per encoding, 2.7 with its own residual in
  // the block's range; error feedback sends e_t - e_{t+1}: 2 * 2.7 * 19 /
  // 16 = 6.4125 on qa2a at nu = 0; 2 * 2.7 * 14 / 16 = 4.725 on qring at
  // nu = 1.
  EXPECT_NEAR(updateNoiseRatio(s, plan("qa2a", "q2"), 4, 0.0), 6.4125, 1e-12);
  EXPECT_NEAR(updateNoiseRatio(s, plan("qring", "q2"), 4, 1.0), 4.725, 1e-12);
  // Without feedback: one rounding, on g's own range: 0.3 * 19 / 16 =
  // 0.35625 and 0.3 * 14 / 16 = 0.2625.
  EXPECT_NEAR(encodingNoise(s, parseCodecSpec("q2"), false), 0.3, 1e-12);
  EXPECT_NEAR(updateNoiseRatio(s, plan("qa2a", "q2"), 4, 0.0, false), 0.35625, 1e-12);
  EXPECT_NEAR(updateNoiseRatio(s, plan("qring", "q2"), 4, 1.0, false), 0.2625, 1e-12);
  // q4's quantVar is 0 in these statistics; codecs other than Quant add none here.
  EXPECT_DOUBLE_EQ(updateNoiseRatio(s, plan("qa2a", "q4"), 4, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(updateNoiseRatio(s, plan("sparse_ag", "topk:0.01"), 4, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(updateNoiseRatio(s, plan("ring", "none"), 4, 0.0), 0.0);
}

TEST(ProgressModel, WhichCodecsCarryErrorFeedback) {
  // SGD: every lossy codec; Adam: only those whose error is biased.
  for (const char* spec : {"q2", "q4", "q8", "bf16", "fp16", "topk:0.01", "randk:0.01", "sign", "sign:rot"})
    EXPECT_TRUE(carriesErrorFeedback(parseCodecSpec(spec), OptimizerKind::Sgd)) << spec;
  for (const char* spec : {"q2", "q4", "q8", "bf16", "fp16"})
    EXPECT_FALSE(carriesErrorFeedback(parseCodecSpec(spec), OptimizerKind::Adam)) << spec;
  for (const char* spec : {"topk:0.01", "randk:0.01", "sign", "sign:rot"})
    EXPECT_TRUE(carriesErrorFeedback(parseCodecSpec(spec), OptimizerKind::Adam)) << spec;
  CodecParams nearest = parseCodecSpec("q4");
  nearest.stochastic = false;  // rounding to nearest is biased
  EXPECT_TRUE(carriesErrorFeedback(nearest, OptimizerKind::Adam));
  EXPECT_FALSE(carriesErrorFeedback(parseCodecSpec("none"), OptimizerKind::Sgd));
}

TEST(ProgressModel, ResidualRangeFactor) {
  // delta <= range(g) / (L - 2) with stochastic rounding, L = 2^bits - 1:
  // (L / (L - 2))^2 = 9 (q2), (15 / 13)^2 = 1.33136 (q4), (255 / 253)^2 =
  // 1.01587 (q8); to nearest L - 1: (3 / 2)^2 = 2.25 (q2).
  EXPECT_NEAR(residualRangeFactor(parseCodecSpec("q2")), 9.0, 1e-12);
  EXPECT_NEAR(residualRangeFactor(parseCodecSpec("q4")), 1.3313609467, 1e-9);
  EXPECT_NEAR(residualRangeFactor(parseCodecSpec("q8")), 1.0158727679, 1e-9);
  CodecParams nearest = parseCodecSpec("q2");
  nearest.stochastic = false;
  EXPECT_NEAR(residualRangeFactor(nearest), 2.25, 1e-12);
  // Stochastic one bit: the residual can span the whole range.
  EXPECT_TRUE(std::isinf(residualRangeFactor(parseCodecSpec("q1"))));
  EXPECT_DOUBLE_EQ(residualRangeFactor(parseCodecSpec("bf16")), 1.0);
  EXPECT_DOUBLE_EQ(residualRangeFactor(parseCodecSpec("sign:rot")), 1.0);
  // In the noise: q1's infinite factor on a step of 0 is no noise, not NaN.
  GradStats s = handStats();
  s.quantVar[quantWidthIndex(1)] = 0.0;
  EXPECT_DOUBLE_EQ(encodingNoise(s, parseCodecSpec("q1")), 0.0);
  s.quantVar[quantWidthIndex(1)] = 0.5;
  EXPECT_TRUE(std::isinf(encodingNoise(s, parseCodecSpec("q1"))));
}

TEST(ProgressModel, AdamStepUnderNoise) {
  // u = 3, noise 1: r = sqrt(3 / 4) = 0.86603; a step below the
  // coordinate's best keeps r of its progress (README section 7).
  EXPECT_NEAR(adamStepRatio(3.0, 1.0), 0.8660254038, 1e-9);
  EXPECT_NEAR(adamStepProgress(3.0, 1.0), 0.8660254038, 1e-9);
  EXPECT_DOUBLE_EQ(adamStepProgress(3.0, 0.0), 1.0);  // no noise: Adam's own step
  EXPECT_DOUBLE_EQ(adamStepRatio(0.0, 1.0), 0.0);     // no signal: all noise
}

TEST(ProgressModel, AdamNoiseGainOverTheHistogram) {
  const GradStats s = handStats();
  // Noise ratio 0.1: 0.1 * sumSq / 1000 = 1e-4 per element. nu = 0 (the
  // average's second moment is one rank's). Bin 200: m = 0.05, r =
  // sqrt(0.05 / 0.0501) = 0.99900; bin 100: m = 0.5 / 990 = 5.0505e-4, r =
  // sqrt(5.0505e-4 / 6.0505e-4) = 0.91363. Weights n sqrt(m) = sqrt(5) =
  // 2.2361 and sqrt(495) = 22.249: A = (2.2361 * 0.99900 + 22.249 *
  // 0.91363) / 24.485 = 0.92143.
  EXPECT_NEAR(adamNoiseGain(s, 0.1, 4, 0.0), 0.9214289423, 1e-9);
  // nu = 1: the average holds (1 + 1) / (1 + 4) = 0.4 of one rank's second
  // moment; noise 0.3525 (2 * 0.3 * 9.4 / 16) * 1e-3. Bin 200: u = 0.02,
  // r = 0.99130; bin 100: u = 2.0202e-4, r = sqrt(2.0202e-4 / 5.5452e-4) =
  // 0.60359: A = 0.63899.
  EXPECT_NEAR(adamNoiseGain(s, 0.3525, 4, 1.0), 0.6389937276, 1e-9);
  EXPECT_DOUBLE_EQ(adamNoiseGain(s, 0.0, 4, 1.0), 1.0);
}

TEST(ProgressModel, PlanGainForAdam) {
  const GradStats s = handStats();
  ProgressInputs in = handInputs();
  // SGD: unbiased rounding costs nothing along G (gain 1). Adam: q2 keeps
  // no residual (carriesErrorFeedback), so on qa2a at nu = 1 it adds one
  // rounding on g's range, 0.3 * 9.4 / 16 = 0.17625 times 1e-3 per element;
  // bin 200: u = 0.02, r = 0.99562; bin 100: u = 2.0202e-4, r =
  // sqrt(2.0202e-4 / 3.7827e-4) = 0.73080: A = (2.2361 * 0.99562 + 22.249
  // * 0.73080) / 24.485 = 0.75498.
  EXPECT_DOUBLE_EQ(planGain(s, plan("qa2a", "q2"), 4, in), 1.0);
  in.optimizer = OptimizerKind::Adam;
  EXPECT_NEAR(planGain(s, plan("qa2a", "q2"), 4, in), 0.7549816255, 1e-9);
  EXPECT_NEAR(adamPlanFactor(s, plan("qa2a", "q2"), 4, in), 0.7549816255, 1e-9);
  // Were its residual fed back (as SGD's is): 2 * 2.7 * 9.4 / 16 = 3.1725;
  // bin 200: r = 0.92903; bin 100: r = sqrt(2.0202e-4 / 3.3745e-3) =
  // 0.24468: A = 0.30717, which is what feedback would cost Adam.
  EXPECT_NEAR(adamNoiseGain(s, updateNoiseRatio(s, plan("qa2a", "q2"), 4, 1.0, true), 4, 1.0), 0.3071745739, 1e-9);
  // A call that names no state carries nothing either: the same 0.75498;
  // and the rotated sign, fed back on a state (0.205 on gather, A =
  // 0.73103 above), has one residual there: 0.41 * 4 / 16 = 0.1025; bin
  // 200: r = 0.99745; bin 100: r = sqrt(2.0202e-4 / 3.0452e-4) = 0.81450:
  // A = 0.83120.
  GradStats rotated = s;
  rotated.signRotError = 0.5;
  rotated.signRotCommon = 0.09;
  in.namedState = false;
  EXPECT_NEAR(planGain(s, plan("qa2a", "q2"), 4, in), 0.7549816255, 1e-9);
  EXPECT_NEAR(adamPlanFactor(rotated, plan("gather", "sign:rot"), 4, in), 0.8312047385, 1e-9);
  in.namedState = true;
  EXPECT_NEAR(adamPlanFactor(rotated, plan("gather", "sign:rot"), 4, in), 0.7310345486, 1e-9);
  EXPECT_DOUBLE_EQ(planGain(s, plan("ring", "none"), 4, in), 1.0);
  // top-K's lag term is unchanged by the optimizer kind.
  const double m = 1.216 / 0.136;
  EXPECT_NEAR(planGain(s, plan("sparse_ag", "topk:0.01"), 4, in), 2 / (2 + 0.2 * m), 1e-12);
}

// Four synthetic ranks: g_i = G_t + xi_i with G_t = cos(0.1 t) A + sin(0.1 t) B
// (A, B independent, unit variance per element: ||G_t|| stays put, and
// ||G_t - G_{t-1}||^2 / ||G||^2 = 2 (1 - cos 0.1) = 0.009992 per call).
struct SyntheticRanks {
  static constexpr int N = 4;
  size_t n = 1 << 16;
  std::vector<float> A, B;
  double sigma = 0;
  std::mt19937 rng{3};

  SyntheticRanks(double sigmaIn) : A(n), B(n), sigma(sigmaIn) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (size_t i = 0; i < n; ++i) A[i] = d(rng), B[i] = d(rng);
  }

  // The reduced statistics of call t, with every rank's residual = owed G_t
  // (so the averaged update owes tau = owed calls along G).
  GradStats reduced(int t, double owed, uint64_t seed) {
    std::normal_distribution<float> d(0.0f, static_cast<float>(sigma));
    GradStats sum;
    clearStats(&sum);
    for (int r = 0; r < N; ++r) {
      std::vector<float> g(n), e(n);
      for (size_t i = 0; i < n; ++i) {
        const float gt = static_cast<float>(std::cos(0.1 * t) * A[i] + std::sin(0.1 * t) * B[i]);
        g[i] = gt + d(rng);
        e[i] = static_cast<float>(owed) * gt;  // sum over ranks: N owed G_t, ebar = owed G_t
      }
      GradStats s;
      clearStats(&s);
      gradStatsCpu(g.data(), sqzFloat32, nullptr, n, &s);
      statsSketchCpu(g.data(), sqzFloat32, n, 0, seed, s.sketch);
      for (double v : s.sketch) s.sketchSq += v * v;
      s.sketchRanks = 1;
      statsSketchCpu(e.data(), sqzFloat32, n, 0, seed, s.sketchResidual);
      s.residualRanks = 1;
      addStats(&sum, s);
    }
    return sum;
  }
};

TEST(ProgressTracker, RecoversTheNoiseScale) {
  // sigma^2 = 4 per element against ||G||^2 = 1 per element, 4 ranks:
  // nu = 4 / (4 * 1) = 1.
  SyntheticRanks ranks(2.0);
  ProgressTracker tracker;
  for (int t = 0; t < 24; ++t) tracker.update(ranks.reduced(0, 0.0, t), 4, 2 * t, t, "", nullptr);
  EXPECT_NEAR(tracker.inputs(4, 0.9).nu, 1.0, 0.15);
  EXPECT_FALSE(tracker.inputs(4, 0.9).driftKnown);  // never two exchanges on consecutive calls
  EXPECT_EQ(tracker.inputs(4, 0.9).optimizer, OptimizerKind::Sgd);
  EXPECT_EQ(tracker.inputs(4, 0.9, OptimizerKind::Adam).optimizer, OptimizerKind::Adam);
}

TEST(ProgressTracker, RecoversDriftAndMeasuredLag) {
  // sigma = 0.2: nu = 0.04 / 4 = 0.01; drift 2 (1 - cos 0.1) = 0.009992
  // per call. Each rank's residual is 0.5 G_t: ebar = 0.5 G_t,
  // <ebar, G> / ||G||^2 = 0.5 calls owed.
  SyntheticRanks ranks(0.2);
  ProgressTracker tracker;
  const PlanSpec sign = plan("qa2a", "sign");
  // One exchange's lag comes from a 128-bucket sketch inner product
  // (relative spread about sqrt(2 / 128) = 12.5%): averaged over the last
  // 24 exchanges (12 sketch seeds), within 0.05 is about 3 spreads.
  double lagSum = 0;
  int lagCount = 0;
  for (int t = 0; t < 32; ++t) {
    tracker.update(ranks.reduced(t, 0.5, t / 2), 4, static_cast<uint64_t>(t), t / 2, "qa2a:sign", &sign);
    if (t >= 8) lagSum += tracker.measuredLag(), ++lagCount;
  }
  const ProgressInputs in = tracker.inputs(4, 0.9);
  EXPECT_NEAR(in.nu, 0.01, 0.005);
  ASSERT_TRUE(in.driftKnown);
  EXPECT_NEAR(in.drift, 2 * (1 - std::cos(0.1)), 0.003);
  EXPECT_NEAR(lagSum / lagCount, 0.5, 0.05);
  // No plan to measure (it changed, or none ran yet): nothing measured.
  ProgressTracker none;
  none.update(ranks.reduced(0, 0.0, 0), 4, 0, 0, "", nullptr);
  EXPECT_FALSE(std::isfinite(none.measuredLag()));
  EXPECT_DOUBLE_EQ(none.lagScale("qa2a:sign"), 1.0);
}

// The rest of the step between calls: each exchange reports the sum over
// the 4 ranks; the tracker keeps the median of the last 8 (per rank), so
// one evaluation pause between two calls does not count as a step.
TEST(ProgressTracker, TheRestOfTheStepIsAMedianThatAPauseDoesNotMove) {
  GradStats s;
  clearStats(&s);
  s.sketchRanks = 4;  // every rank sketched (else the exchange is not read)
  ProgressTracker tracker;
  EXPECT_EQ(tracker.otherSeconds(), 0.0);
  auto step = [&](double perRank) {
    s.otherSeconds = 4 * perRank;
    tracker.update(s, 4, 0, 0, "", nullptr);
  };
  step(0.1);
  EXPECT_DOUBLE_EQ(tracker.otherSeconds(), 0.1);
  for (int i = 0; i < 4; ++i) step(0.1);
  step(3.0);  // an evaluation between two calls: a mean of these 6 would say 0.58 s
  EXPECT_DOUBLE_EQ(tracker.otherSeconds(), 0.1);
  step(0.1);
  step(0.1);
  EXPECT_DOUBLE_EQ(tracker.otherSeconds(), 0.1);
  // A step that really changed takes over once it fills half the window:
  // the median of {0.1 x 4, 3.0, 0.2 x 3} is (0.1 + 0.2) / 2, then 0.2.
  for (int i = 0; i < 3; ++i) step(0.2);
  EXPECT_NEAR(tracker.otherSeconds(), 0.15, 1e-12);
  step(0.2);
  EXPECT_DOUBLE_EQ(tracker.otherSeconds(), 0.2);
  // No sample (the first call has no previous one): unchanged.
  step(0.0);
  EXPECT_DOUBLE_EQ(tracker.otherSeconds(), 0.2);
}

// Auto's own time between exchanges, as the exchanges report it (summed
// over the 4 ranks): the per-rank median of the last 8, which prices the
// statistics where it exceeds calibration's figure (AutoTuner::choose).
TEST(ProgressTracker, AutosOwnTimeIsThePerRankMedianOfTheReports) {
  GradStats s;
  clearStats(&s);
  s.sketchRanks = 4;
  ProgressTracker tracker;
  EXPECT_EQ(tracker.tunerSeconds(), 0.0);
  auto report = [&](double sumOverRanks) {
    s.tunerSeconds = sumOverRanks;
    tracker.update(s, 4, 0, 0, "", nullptr);
  };
  report(0.0);  // the first call's exchange reports nothing
  EXPECT_EQ(tracker.tunerSeconds(), 0.0);
  report(4 * 190e-6);
  EXPECT_DOUBLE_EQ(tracker.tunerSeconds(), 190e-6);
  report(4 * 400e-6);  // the second of a pair also paid for the first one's choice
  EXPECT_DOUBLE_EQ(tracker.tunerSeconds(), 0.5 * (190e-6 + 400e-6));
  report(4 * 210e-6);
  EXPECT_DOUBLE_EQ(tracker.tunerSeconds(), 210e-6);
  // Not the rest of the step, which has its own median, nor the idle time.
  EXPECT_EQ(tracker.otherSeconds(), 0.0);
  EXPECT_EQ(tracker.idleSeconds(), 0.0);
  s.idleSeconds = 4 * 0.3e-3;
  tracker.update(s, 4, 0, 0, "", nullptr);
  EXPECT_DOUBLE_EQ(tracker.idleSeconds(), 0.3e-3);
}

// The link credit's checks: all of it before any, then the median of the
// last 8 (linkCreditRealized's shares); no evidence (NaN) changes nothing,
// and a credit that shows again comes back.
TEST(ProgressTracker, CreditRealizedIsTheMedianOfTheChecks) {
  ProgressTracker tracker;
  EXPECT_EQ(tracker.creditRealized(), 1.0);
  tracker.checkCredit(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(tracker.creditRealized(), 1.0);
  tracker.checkCredit(0.0);
  EXPECT_EQ(tracker.creditRealized(), 0.0);
  tracker.checkCredit(0.2);
  tracker.checkCredit(1.0);
  EXPECT_DOUBLE_EQ(tracker.creditRealized(), 0.2);
  for (int i = 0; i < 3; ++i) tracker.checkCredit(0.0);
  EXPECT_EQ(tracker.creditRealized(), 0.0);  // 0 0 0 0 0.2 1
  for (int i = 0; i < 8; ++i) tracker.checkCredit(0.9);
  EXPECT_DOUBLE_EQ(tracker.creditRealized(), 0.9);
}

TEST(ProgressTracker, MeasuredLagCorrectsThatPlansPrediction) {
  // A plan predicted to owe tau_p whose residual owes 4 tau_p: its factor
  // becomes 4 (log-averaged), other plans keep 1.
  SyntheticRanks ranks(0.5);
  ProgressTracker tracker;
  const PlanSpec topk = plan("sparse_ag", "topk:0.1");
  for (int t = 0; t < 16; ++t) {
    GradStats s = ranks.reduced(t, 0.0, t / 2);
    const double predicted = predictedLag(s, topk, 4);
    ASSERT_GT(predicted, 0.0);
    s = ranks.reduced(t, 4 * predicted, t / 2);
    tracker.update(s, 4, static_cast<uint64_t>(t), t / 2, "sparse_ag:topk:0.1", &topk);
  }
  EXPECT_NEAR(tracker.lagScale("sparse_ag:topk:0.1"), 4.0, 0.8);
  EXPECT_DOUBLE_EQ(tracker.lagScale("qa2a:q4"), 1.0);
}

}  // namespace
}  // namespace sqz
