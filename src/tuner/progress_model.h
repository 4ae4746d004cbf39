// The gain auto maximizes per second (DESIGN.md section 1): the expected
// training progress of one call's averaged update under a plan, relative to
// the exact allreduce's. The derivation, with references, is in
// src/tuner/README.md; each function below is one of its terms.
//
//   gain    = (1 + nu) / (1 + nu + penalty)                  descent lemma
//   penalty = drift * M(mu, psi) * tau^2 / (1 + nu)          error-feedback lag
//   tau     = a / (1 - a) * sumK / N                         what is owed, in calls
//   tau^2  += e * (sumK / N)^2       (the scaled sign)       its error common to all ranks
//                                    (sign:rot: averaged over its keys)
//   M       = (1 + mu)(1 - mu psi) / ((1 - mu)(1 + mu psi))  momentum
//   gain   *= A (adaptive optimizers only)                   Adam's second moment
//   A       = sum_b w_b r_b / sum_b w_b,  r_b = sqrt(u_b / (u_b + s^2))
//
//   nu     the noise of the exact average over its signal, E||gbar - G||^2 /
//          ||G||^2 (gradient noise scale, McCandlish et al. 2018), from the
//          statistics' count sketches: N ranks average the noise down;
//   drift  ||G_t - G_{t-1}||^2 / ||G||^2, how far the signal moves in one
//          call, from two exchanges on consecutive calls;
//   a      the part of a codec's error along its input (unbiased codecs 0,
//          top-K 1 - kept fraction, the scaled sign from its statistics);
//          with error feedback the update owes a / (1 - a) calls of signal
//          along G in steady state (Stich & Karimireddy 2020's virtual
//          sequence), summed over the encodings a coordinate passes;
//   e      the scaled sign's squared error across its input over ||x||^2:
//          deterministic, so on the shared signal every rank makes the same
//          error and it does not average out over ranks;
//   M      how much the optimizer's momentum mu amplifies that lag for
//          gradients whose call-to-call correlation is psi;
//   A      (SQZ_OPTIMIZER=adam) how much of Adam's step survives when the
//          codec's rounding noise s^2 per coordinate enters the second moment
//          v: u_b the averaged gradient's second moment in magnitude bin b,
//          w_b that bin's share of Adam's progress (README section 7);
//          s^2 counts two residuals per encoding where the codec's error is
//          fed back and one where it is not (carriesErrorFeedback).
//
// Everything is a function of exactly reduced statistics, the plan,
// SQZ_MOMENTUM and SQZ_OPTIMIZER, so every rank computes the same numbers.
#pragma once

#include <limits>
#include <map>
#include <string>

#include "kernels/grad_stats.h"
#include "src/tuner/plan_name.h"

namespace sqz {

// Signal and noise of one buffer's gradient from its count sketches
// (GradStats::sketch): S = ||sketch of sum_i g_i||^2 and Q = sum_i ||sketch
// of g_i||^2 over N ranks. With g_i = G + xi_i: E[S - Q] = N (N-1) ||G||^2
// and E[N Q - S] = N (N-1) sigma^2 (on the sketched elements), so the exact
// average's noise over its signal is
//   nu = sigma^2 / (N ||G||^2) = (N Q - S) / (N (S - Q)).
struct NoiseScale {
  double signalSq = 0;  // ||G||^2 on the sketched elements
  double noise = 0;     // nu
  bool known = false;   // S > Q: a signal is visible (else nu is taken as 0)
};
NoiseScale noiseScale(double sketchSumSq, double sketchSq, int ranks);

// The optimizer's kind (SQZ_OPTIMIZER): whether its step is linear in the
// averaged update (SGD, with or without momentum) or divides each
// coordinate by the root of its second moment (Adam and its kin: AdamW,
// RMSprop, Adagrad).
enum class OptimizerKind { Sgd, Adam };

// Whether a codec's error needs error feedback to converge: what it leaves
// out is biased (top-K's unsent values, random-K's unsent ones, the scaled
// sign's deterministic error, rounding to nearest). Stochastic rounding is
// unbiased and the casts' error is about 2^-9 of each value: they need none.
bool codecNeedsFeedback(const CodecParams& codec);

// Whether a call on a state the caller names keeps what `codec` left out
// for the next call (README section 7): with SGD every lossy codec does;
// with Adam only those that need it, since feedback of unbiased rounding
// doubles the noise Adam's second moment sees (e_t - e_{t+1} in place of
// one rounding) and widens the quantizer's block range, which shrinks
// every coordinate's step, while what it buys back (the rounding noise
// cancelling over calls) is second order at Adam's steps.
bool carriesErrorFeedback(const CodecParams& codec, OptimizerKind optimizer);

// What the gain needs besides a plan: nu, the signal's drift per call (when
// no pair of exchanges measured it yet: the step size best for noise nu
// moves G by 1 / sqrt(1 + nu) of itself, drift 1 / (1 + nu)), the
// optimizer's momentum (SGD's momentum, Adam's beta1; SQZ_MOMENTUM) and its
// kind (SQZ_OPTIMIZER).
struct ProgressInputs {
  double nu = 0;
  double drift = 0;
  bool driftKnown = false;
  double momentum = 0.9;
  OptimizerKind optimizer = OptimizerKind::Sgd;
  bool namedState = true;  // the call names a state (else no codec's error is carried: src/implicit_states.h)
};
double driftPerCall(const ProgressInputs& in);

// The averaged gradient's correlation between consecutive calls:
// <gbar_t, gbar_{t-1}> / ||gbar||^2 = (1 - drift / 2) / (1 + nu).
double callCorrelation(const ProgressInputs& in);

// The momentum factor: ||gbar||^2 / ((1 - mu)^2 ||m||^2) for the heavy-ball
// buffer m = sum_k mu^k gbar_{t-k} of gradients with call-to-call
// correlation psi^k: (1 + mu)(1 - mu psi) / ((1 - mu)(1 + mu psi)). 1 without
// momentum or for a gradient that never changes (psi = 1); (1 + mu) /
// (1 - mu) = 19 at mu = 0.9 for uncorrelated ones.
double momentumFactor(double mu, double psi);

// The squared gradient error, over ||G||^2, of an update that owes tau
// calls of signal: drift * M * tau^2 / (1 + nu).
double lagPenalty(const ProgressInputs& in, double tau);

// The descent lemma's progress with that gradient error added to the noise
// (McCandlish et al. 2018's progress at the best step size), relative to
// exact: (1 + nu) / (1 + nu + lagPenalty). 1 when tau = 0.
double progressGain(const ProgressInputs& in, double tau);

// How a codec loses information, from the statistics of g.
struct CodecLoss {
  enum class Kind { Exact, ErrorFeedback, NotContractive, Variance } kind = Kind::Exact;
  double aligned = 0;  // ErrorFeedback: the error's part along the input, <e, x> / ||x||^2
  double omega = 0;    // Variance: unbiased error power over ||x||^2, never fed back
};
CodecLoss codecLoss(const GradStats& s, const CodecParams& p);

// The signal one encoding owes in steady state, in calls of its input's
// signal: owed' = a (owed + 1), so a / (1 - a). Infinite for a >= 1.
double owedCalls(double aligned);

// How many ranks' inputs are summed in each encoding a coordinate passes
// through under `algorithm` on N ranks (what is owed adds up over them):
// qa2a: N-1 ranks' own (1 each) and the owner's sum (N); qring: the partial
// sums 1 .. N of the ring; sparse, randk, gather: each rank's own (N
// encodings of 1).
double encodingSumK(const std::string& algorithm, int ranks);

// Adam's second moment (README section 7). The second moment of an
// encoding's input that sums k ranks' g, over one rank's: with g_i = G +
// xi_i and sigma^2 = N nu ||G||^2, (k^2 + k N nu) / (1 + N nu); summed over
// the encodings a coordinate passes under `algorithm` (as encodingSumK:
// qa2a N-1 of 1 and one of N; qring 1 .. N; else N of 1).
double encodingSecondMoments(const std::string& algorithm, int ranks, double nu);

// How much a quantizer's own error-feedback residual widens the block step
// it encodes with, in variance (README section 7): its input is g + e, and
// the residual moves each end of a block's range out by less than delta
// (stochastic rounding; delta / 2 to nearest), so delta <= range(g) / (L -
// 2), L = 2^bits - 1: (L / (L - 2))^2 of the step from g's range (q2 9, q4
// 1.331, q8 1.016; to nearest L - 1). Infinite where the residual can
// outgrow the range (stochastic q1). 1 for the other codecs.
double residualRangeFactor(const CodecParams& codec);

// The random error one encoding of one rank's g adds, over its squared
// norm, that averages out over ranks and calls: a stochastic-rounding
// codec's quantVar / sumSq (its block step delta: delta^2 / 4 per element),
// times residualRangeFactor where its residual is fed back into what it
// encodes (`fedBack`);
// the rotated sign's one key's error less the part every key makes alike,
// (signRotError - signRotCommon) / sumSq. 0 for the other codecs.
double encodingNoise(const GradStats& s, const CodecParams& codec, bool fedBack = true);

// The rounding noise per coordinate of the averaged update, over one rank's
// mean square per element (sumSq / elements): each encoding of one rank's
// input adds encodingNoise * sumSq / elements per element, scaled by that
// encoding's input's second moment; with error feedback (`fedBack`) the
// update carries e_t - e_{t+1}, two uncorrelated residuals: 2 encodingNoise
// encodingSecondMoments / N^2; without, one rounding: half that, on the
// range of g alone. 0 where encodingNoise is 0.
double updateNoiseRatio(const GradStats& s, const PlanSpec& plan, int ranks, double nu, bool fedBack = true);

// How much of one coordinate's Adam step survives noise of power `noise`
// added to a second moment u: r = sqrt(u / (u + noise)); and the progress
// of that step, r of the coordinate's own: at Adam's steps, far below each
// coordinate's best, the descent lemma's first-order term is the progress
// (README section 7).
double adamStepRatio(double u, double noise);
double adamStepProgress(double u, double noise);

// The factor A over the magnitude histogram: bin b holds n_b values of one
// rank's g with mean square m_b; the averaged gradient's second moment there
// is u_b = m_b (1 + nu) / (1 + N nu), Adam's progress share w_b = n_b
// sqrt(m_b), and the noise is noiseRatio * sumSq / elements. 1 for noise 0.
// A = sum_b w_b adamStepProgress(u_b, noise) / sum_b w_b.
double adamNoiseGain(const GradStats& s, double noiseRatio, int ranks, double nu);

// A of a plan (1 unless in.optimizer is Adam): adamNoiseGain of its
// updateNoiseRatio, fed back where the call names a state and
// carriesErrorFeedback says the codec's error is carried.
double adamPlanFactor(const GradStats& s, const PlanSpec& plan, int ranks, const ProgressInputs& in);

// tau of a plan: owedCalls(a) * sumK / N (0 for an exact or variance-only
// codec, infinite for one that is not contractive).
double predictedLag(const GradStats& s, const PlanSpec& plan, int ranks);

// The part of the scaled sign's lag that every rank makes alike, in calls
// of signal (README section 6): its error is a deterministic function of
// its input, so on the signal part of the input (k G in an encoding of k
// ranks' sum) every rank errs the same way, k (C(G) - G), and those errors
// add up over the encodings instead of averaging out as independent
// rounding errors do. With e = the error across the input, of squared norm
// (sumSq - signKept - signAligned^2 / sumSq) over sumSq of one rank's g, and
// its signal share taken as the input's (||G||^2 of (1 + N nu) ||G||^2):
//   tauCommon = sqrt(e) * encodingSumK / N.
// The rotated sign (sign:rot, a key per rank and call) errs alike only in
// its error averaged over keys: e = signRotCommon / sumSq.
// 0 for every other codec (stochastic rounding errs independently on each
// rank; top-K's and random-K's loss is the unsent part, priced by tau).
double commonErrorLag(const GradStats& s, const PlanSpec& plan, int ranks);

// The progress gain of a plan: progressGain of its tau (times lagScale, a
// measured correction) together with commonErrorLag, sqrt(tau^2 + tauCommon^2), or for a codec without error feedback (random-K
// rescaled) the descent lemma with its added variance:
// (1 + nu) / (1 + nu + omega (1 + nu)); 0 for a codec that is not
// contractive (q1: its residual grows without bound). For an adaptive
// optimizer, times adamNoiseGain of the plan's rounding noise.
double planGain(const GradStats& s, const PlanSpec& plan, int ranks, const ProgressInputs& in,
                double lagScale = 1.0);

// What a buffer's tuner learns from exchange to exchange: the sketch sums
// (signal and noise), averaged over the last exchanges (kSmoothing); the
// drift between two exchanges on consecutive calls (TuningState pairs
// them); and for each plan that has run, how its measured lag (<ebar, G> /
// ||G||^2 on the sketches) compares with the prediction: a factor that
// multiplies the prediction from then on; and the rest of the training step
// between calls (a median, so that a pause does not count as a step).
// The median of the last kSamples values added (0 before any): one pause
// between two calls (an evaluation, a checkpoint) is one sample that the
// calls around it do not pay; a mean let one 3 s evaluation quadruple a
// CNN's 0.1 s step for 20 exchanges (perf/results/training.md, session of
// 2026-12-06).
class RecentMedian {
 public:
  static constexpr size_t kSamples = 8;
  void add(double v);
  double value() const { return value_; }
  bool empty() const { return count_ == 0; }

 private:
  double samples_[kSamples] = {};
  uint64_t count_ = 0;
  double value_ = 0;
};

class ProgressTracker {
 public:
  static constexpr double kSmoothing = 8;  // exchanges averaged over (running mean, then exponential)

  // One exchange's reduced statistics, taken at the buffer's call number
  // `call` with sketch seed `seed`, while `plan` ran the calls before it
  // (empty: the plan changed since, or no plan yet).
  void update(const GradStats& reduced, int ranks, uint64_t call, uint64_t seed, const std::string& plan,
              const PlanSpec* spec);
  ProgressInputs inputs(int ranks, double momentum, OptimizerKind optimizer = OptimizerKind::Sgd) const;
  NoiseScale noise(int ranks) const;
  // The factor measured for `plan` (1 when never measured).
  double lagScale(const std::string& plan) const;
  // Last measured lag of the plan that ran (NaN: none).
  double measuredLag() const { return measuredLag_; }
  // The rest of a training step between two calls (per rank): the median
  // of the last RecentMedian::kSamples exchanges' (0 before any).
  double otherSeconds() const { return other_.value(); }
  // Auto's own time on this buffer between two exchanges (per rank: its
  // statistics, choices and waits), measured where it runs: the median of
  // the last RecentMedian::kSamples exchanges' (0 before any).
  double tunerSeconds() const { return tuner_.value(); }
  // The links' idle time before a call of this buffer (per rank): since the
  // previous allreduce of any buffer ended, so other buffers' calls between
  // two of this one's do not count (applyLinkCredit); the median of the last
  // RecentMedian::kSamples exchanges' (0 before any).
  double idleSeconds() const { return idle_.value(); }
  // One exchange's check of the links' idle credit (linkCreditRealized: the
  // share of it the previous call got; NaN, no evidence, is ignored).
  void checkCredit(double realized);
  // The share of the credit the calls get: the median of the last
  // RecentMedian::kSamples checks; 1 before any (the profile's burst, as
  // calibration measured it). For the decision log (AutoTuner::choose).
  double creditRealized() const { return credit_.empty() ? 1.0 : credit_.value(); }

 private:
  double s_ = 0, q_ = 0;
  RecentMedian other_, tuner_, idle_, credit_;
  double driftNum_ = 0, driftDen_ = 0, driftWeight_ = 0;
  double measuredLag_ = std::numeric_limits<double>::quiet_NaN();
  uint64_t updates_ = 0;
  // The previous exchange's sketch, for the drift.
  bool havePrev_ = false;
  uint64_t prevCall_ = 0, prevSeed_ = 0;
  double prevS_ = 0, prevQ_ = 0;
  double prev_[GradStats::kSketch] = {};
  struct Measured {
    double logScale = 0;
    double weight = 0;
  };
  std::map<std::string, Measured> measured_;
};

}  // namespace sqz
