#include "src/tuner/progress_model.h"

#include <algorithm>
#include <cmath>

namespace sqz {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double sqr(double x) { return x * x; }

}  // namespace

NoiseScale noiseScale(double sketchSumSq, double sketchSq, int ranks) {
  NoiseScale n;
  const double N = ranks;
  if (ranks < 2 || !(sketchSq > 0) || !(sketchSumSq > sketchSq)) return n;  // no visible signal: nu unknown
  n.signalSq = (sketchSumSq - sketchSq) / (N * (N - 1));
  n.noise = std::max(0.0, (N * sketchSq - sketchSumSq) / (N * (sketchSumSq - sketchSq)));
  n.known = true;
  return n;
}

double driftPerCall(const ProgressInputs& in) {
  return in.driftKnown ? std::max(0.0, in.drift) : 1.0 / (1.0 + std::max(0.0, in.nu));
}

double callCorrelation(const ProgressInputs& in) {
  const double c = (1.0 - 0.5 * std::min(driftPerCall(in), 4.0)) / (1.0 + std::max(0.0, in.nu));
  return std::clamp(c, -1.0, 1.0);
}

double momentumFactor(double mu, double psi) {
  if (!(mu > 0)) return 1.0;
  mu = std::min(mu, 0.999);
  return (1.0 + mu) * (1.0 - mu * psi) / ((1.0 - mu) * (1.0 + mu * psi));
}

double lagPenalty(const ProgressInputs& in, double tau) {
  if (!(tau > 0)) return 0.0;
  if (!std::isfinite(tau)) return kInf;
  const double a = 1.0 + std::max(0.0, in.nu);
  return driftPerCall(in) * momentumFactor(in.momentum, callCorrelation(in)) * tau * tau / a;
}

double progressGain(const ProgressInputs& in, double tau) {
  const double p = lagPenalty(in, tau);
  if (!std::isfinite(p)) return 0.0;
  const double a = 1.0 + std::max(0.0, in.nu);
  return a / (a + p);
}

CodecLoss codecLoss(const GradStats& s, const CodecParams& p) {
  CodecLoss l;
  if (p.kind == CodecKind::None || s.sumSq <= 0.0) return l;
  l.kind = CodecLoss::Kind::ErrorFeedback;
  switch (p.kind) {
    case CodecKind::Bf16: break;  // round to nearest: errors of either sign, none along x
    case CodecKind::Fp16:
      // Also flushes magnitudes below 2^-24 to zero: that part is owed.
      l.aligned = std::clamp(1.0 - gain(s, p), 0.0, 1.0);
      break;
    case CodecKind::Quant:
      // Stochastic rounding is unbiased (nothing along x); rounding to
      // nearest errs either way. With error feedback one bit is not
      // contractive: the residual can span the block's whole range, which
      // then grows without bound (two bits: two thirds of it at most).
      if (p.bits <= 1 && p.stochastic) l.kind = CodecLoss::Kind::NotContractive;
      break;
    case CodecKind::Sign: l.aligned = std::clamp(s.signAligned / s.sumSq, 0.0, 1.0); break;
    case CodecKind::TopK: l.aligned = std::clamp(1.0 - gain(s, p), 0.0, 1.0); break;  // the unsent part
    case CodecKind::RandK:
      if (p.rescale) {
        // Unbiased (values scaled by n/K) and sent without error feedback:
        // error power n/K - 1 times ||x||^2 every call.
        l.kind = CodecLoss::Kind::Variance;
        l.omega = 1.0 / gain(s, p) - 1.0;
      } else {
        l.aligned = std::clamp(1.0 - gain(s, p), 0.0, 1.0);
      }
      break;
    default: break;
  }
  return l;
}

double owedCalls(double aligned) {
  if (!(aligned > 0)) return 0.0;
  if (aligned >= 1.0) return kInf;
  return aligned / (1.0 - aligned);
}

double encodingSumK(const std::string& algorithm, int ranks) {
  const double N = std::max(1, ranks);
  if (algorithm == "qa2a") return (N - 1) + N;      // N-1 ranks' own, then the owner's sum of N
  if (algorithm == "qring") return N * (N + 1) / 2;  // partial sums 1 .. N-1, then the final sum of N
  return N;                                          // sparse_ag, sparse_split, randk, gather
}

double encodingSecondMoments(const std::string& algorithm, int ranks, double nu) {
  const double N = std::max(1, ranks);
  const double noise = N * std::max(0.0, nu);  // sigma^2 / ||G||^2 of one rank's g
  const auto kappa = [&](double k) { return k * (k + noise) / (1.0 + noise); };
  if (algorithm == "qa2a") return (N - 1) * kappa(1) + kappa(N);  // N-1 ranks' own, then the owner's sum
  if (algorithm == "qring") {
    double sum = 0;
    for (int k = 1; k <= ranks; ++k) sum += kappa(k);  // the hops' partial sums, then the owner's
    return sum;
  }
  return N * kappa(1);  // each rank's own
}

bool codecNeedsFeedback(const CodecParams& codec) {
  switch (codec.kind) {
    case CodecKind::TopK:
    case CodecKind::RandK:
    case CodecKind::Sign: return true;
    case CodecKind::Quant: return !codec.stochastic;
    case CodecKind::None:
    case CodecKind::Bf16:
    case CodecKind::Fp16: return false;
  }
  return false;
}

bool carriesErrorFeedback(const CodecParams& codec, OptimizerKind optimizer) {
  if (codec.kind == CodecKind::None) return false;
  return optimizer == OptimizerKind::Sgd || codecNeedsFeedback(codec);
}

double residualRangeFactor(const CodecParams& codec) {
  if (codec.kind != CodecKind::Quant) return 1.0;
  // range(g + e) <= range(g) + 2 max|e| and delta = range(g + e) / L, with
  // max|e| < delta (stochastic) or <= delta / 2 (nearest).
  const double L = maxCode(codec.bits), spent = codec.stochastic ? 2.0 : 1.0;
  if (!(L > spent)) return kInf;
  const double f = L / (L - spent);
  return f * f;
}

double encodingNoise(const GradStats& s, const CodecParams& codec, bool fedBack) {
  if (!(s.sumSq > 0)) return 0.0;
  if (codec.kind == CodecKind::Quant) {
    // A step of 0 (constant blocks) stays 0 noise whatever the factor (q1's is infinite).
    const double step = s.quantVar[quantWidthIndex(codec.bits)] / s.sumSq;
    return step > 0 ? step * (fedBack ? residualRangeFactor(codec) : 1.0) : 0.0;
  }
  // The rotated sign: one key's error less the part every key makes alike.
  if (codec.kind == CodecKind::Sign && codec.rotate) return std::max(0.0, s.signRotError - s.signRotCommon) / s.sumSq;
  return 0.0;
}

double updateNoiseRatio(const GradStats& s, const PlanSpec& plan, int ranks, double nu, bool fedBack) {
  const double perEncoding = encodingNoise(s, plan.codec, fedBack);
  if (!(perEncoding > 0)) return 0.0;
  const double N = std::max(1, ranks);
  const double residuals = fedBack ? 2.0 : 1.0;  // e_t - e_{t+1}, or one rounding
  return residuals * perEncoding * encodingSecondMoments(plan.algorithm, ranks, nu) / (N * N);
}

double adamStepRatio(double u, double noise) {
  if (!(noise > 0)) return 1.0;
  if (!(u > 0)) return 0.0;
  return std::sqrt(u / (u + noise));
}

double adamStepProgress(double u, double noise) {
  // First order: the step's own length (README section 7).
  return adamStepRatio(u, noise);
}

double adamNoiseGain(const GradStats& s, double noiseRatio, int ranks, double nu) {
  if (!(noiseRatio > 0) || !(s.sumSq > 0) || !(s.elements > 0)) return 1.0;
  const double N = std::max(1, ranks);
  const double averaged = (1.0 + std::max(0.0, nu)) / (1.0 + N * std::max(0.0, nu));
  double counted = 0;
  for (int b = 0; b < GradStats::kBins; ++b) counted += s.binCount[b];
  if (!(counted > 0)) return 1.0;
  // Per element of the histogram (which may have sampled fewer than `elements`).
  const double noise = noiseRatio * s.sumSq / counted;
  double weight = 0, kept = 0;
  for (int b = 0; b < GradStats::kBins; ++b) {
    if (!(s.binCount[b] > 0) || !(s.binSumSq[b] > 0)) continue;
    const double m = s.binSumSq[b] / s.binCount[b];
    const double w = s.binCount[b] * std::sqrt(m);
    weight += w;
    kept += w * adamStepProgress(averaged * m, noise);
  }
  return weight > 0 ? kept / weight : 1.0;
}

double adamPlanFactor(const GradStats& s, const PlanSpec& plan, int ranks, const ProgressInputs& in) {
  if (in.optimizer != OptimizerKind::Adam) return 1.0;
  const bool fedBack = in.namedState && carriesErrorFeedback(plan.codec, in.optimizer);
  return adamNoiseGain(s, updateNoiseRatio(s, plan, ranks, in.nu, fedBack), ranks, in.nu);
}

double predictedLag(const GradStats& s, const PlanSpec& plan, int ranks) {
  const CodecLoss l = codecLoss(s, plan.codec);
  switch (l.kind) {
    case CodecLoss::Kind::Exact:
    case CodecLoss::Kind::Variance: return 0.0;
    case CodecLoss::Kind::NotContractive: return kInf;
    case CodecLoss::Kind::ErrorFeedback: break;
  }
  // An encoding of the sum of k ranks' inputs owes owedCalls(a) calls of k
  // ranks' signal; the averaged update (signal N G per call, summed) owes
  // the sum of those over N.
  const double owed = owedCalls(l.aligned);
  if (!(owed > 0)) return 0.0;
  return owed * encodingSumK(plan.algorithm, ranks) / std::max(1, ranks);
}

double commonErrorLag(const GradStats& s, const PlanSpec& plan, int ranks) {
  if (plan.codec.kind != CodecKind::Sign || !(s.sumSq > 0)) return 0.0;
  double across;
  if (plan.codec.rotate) {
    // Each rank rotates with its own key: only the error averaged over keys
    // is common (orthogonal to x, as every key's error is).
    across = std::clamp(s.signRotCommon / s.sumSq, 0.0, 1.0);
  } else {
    const double aligned = std::clamp(s.signAligned / s.sumSq, 0.0, 1.0);
    across = std::max(0.0, (s.sumSq - s.signKept) / s.sumSq - aligned * aligned);
  }
  return std::sqrt(across) * encodingSumK(plan.algorithm, ranks) / std::max(1, ranks);
}

double planGain(const GradStats& s, const PlanSpec& plan, int ranks, const ProgressInputs& in, double lagScale) {
  if (s.nonFinite > 0) return 0.0;
  const CodecLoss l = codecLoss(s, plan.codec);
  if (l.kind == CodecLoss::Kind::Variance) {
    const double a = 1.0 + std::max(0.0, in.nu);
    return a / (a + l.omega * a);
  }
  const double tau = lagScale * predictedLag(s, plan, ranks), common = commonErrorLag(s, plan, ranks);
  double g = progressGain(in, common > 0 ? std::sqrt(tau * tau + common * common) : tau);
  g *= adamPlanFactor(s, plan, ranks, in);
  if (plan.hierarchical && plan.intraCodec.kind != CodecKind::None) {
    PlanSpec intra;
    intra.algorithm = "qring";
    intra.codec = plan.intraCodec;
    g *= progressGain(in, predictedLag(s, intra, ranks));
  }
  return g;
}

void RecentMedian::add(double v) {
  samples_[count_++ % kSamples] = v;
  const size_t have = std::min<uint64_t>(count_, kSamples);
  double sorted[kSamples];
  std::copy(samples_, samples_ + have, sorted);
  std::sort(sorted, sorted + have);
  value_ = have % 2 ? sorted[have / 2] : 0.5 * (sorted[have / 2 - 1] + sorted[have / 2]);
}

void ProgressTracker::checkCredit(double realized) {
  if (std::isfinite(realized)) credit_.add(realized);
}

void ProgressTracker::update(const GradStats& reduced, int ranks, uint64_t call, uint64_t seed,
                             const std::string& plan, const PlanSpec* spec) {
  ++updates_;
  measuredLag_ = std::numeric_limits<double>::quiet_NaN();
  if (reduced.sketchRanks < ranks || ranks < 2) return;  // not every rank sketched
  const double N = ranks;
  double s = 0, dot = 0;
  for (int k = 0; k < GradStats::kSketch; ++k) {
    s += reduced.sketch[k] * reduced.sketch[k];
    dot += reduced.sketch[k] * reduced.sketchResidual[k];
  }
  const double q = reduced.sketchSq;
  // Drift: two exchanges one call apart, sketched alike. ||P_k - P_{k-1}||^2
  // (P the reduced sketch) = N^2 ||G_k - G_{k-1}||^2 plus both exchanges' noise,
  // N sigma^2 = (N Q - S) / (N - 1) each; N^2 ||G||^2 = N (S - Q) / (N - 1).
  if (havePrev_ && call == prevCall_ + 1 && seed == prevSeed_) {
    double d = 0;
    for (int k = 0; k < GradStats::kSketch; ++k) d += sqr(reduced.sketch[k] - prev_[k]);
    const double noise = (N * q - s + N * prevQ_ - prevS_) / (N - 1);
    const double signal = 0.5 * ((s - q) + (prevS_ - prevQ_)) * N / (N - 1);
    if (signal > 0) {
      driftWeight_ = std::min(driftWeight_ + 1.0, kSmoothing);
      driftNum_ += (d - noise - driftNum_) / driftWeight_;
      driftDen_ += (signal - driftDen_) / driftWeight_;
    }
  }
  havePrev_ = true;
  prevCall_ = call;
  prevSeed_ = seed;
  prevS_ = s;
  prevQ_ = q;
  std::copy(reduced.sketch, reduced.sketch + GradStats::kSketch, prev_);
  // Running mean over the first kSmoothing exchanges, then exponential.
  const double w = 1.0 / std::min(static_cast<double>(updates_), kSmoothing);
  s_ += w * (s - s_);
  q_ += w * (q - q_);
  if (reduced.otherSeconds > 0) other_.add(reduced.otherSeconds / N);
  if (reduced.tunerSeconds > 0) tuner_.add(reduced.tunerSeconds / N);
  if (reduced.idleSeconds > 0) idle_.add(reduced.idleSeconds / N);
  const NoiseScale n = noise(ranks);
  if (plan.empty() || spec == nullptr || reduced.residualRanks < N || !n.known) return;
  // What the averaged update owes along G, in calls: the reduced sketches
  // are those of N gbar and N ebar, and E<gbar, ebar> = <G, ebar> (this
  // call's noise is independent of what earlier calls left).
  measuredLag_ = dot / (N * N) / n.signalSq;
  const double predicted = predictedLag(reduced, *spec, ranks);
  if (!(predicted > 0) || !std::isfinite(predicted) || !(measuredLag_ > 0)) return;
  Measured& m = measured_[plan];
  m.weight = std::min(m.weight + 1.0, kSmoothing);
  m.logScale += (std::log(measuredLag_ / predicted) - m.logScale) / m.weight;
}

ProgressInputs ProgressTracker::inputs(int ranks, double momentum, OptimizerKind optimizer) const {
  ProgressInputs in;
  in.nu = noise(ranks).noise;
  in.momentum = momentum;
  in.optimizer = optimizer;
  if (driftWeight_ > 0 && driftDen_ > 0) {
    in.driftKnown = true;
    in.drift = std::max(0.0, driftNum_) / driftDen_;
  }
  return in;
}

NoiseScale ProgressTracker::noise(int ranks) const { return noiseScale(s_, q_, ranks); }

double ProgressTracker::lagScale(const std::string& plan) const {
  auto it = measured_.find(plan);
  return it == measured_.end() ? 1.0 : std::exp(it->second.logScale);
}

}  // namespace sqz
