#!/usr/bin/env bash
# Shows that the gain model's unit tests (progress_model_test.cc) can fail:
# breaks one term of src/tuner/progress_model.cc at a time (each mutation a
# plausible mistake: a term left out or mis-derived), rebuilds the tuner
# tests and expects at least one ProgressModel/ProgressTracker test to fail;
# restores the file after each. Not part of CI (a rebuild per mutation).
#   tests/tuner/progress_model_mutations.sh [BUILD_DIR]   (default build)
# ONLY=TEXT runs only the mutations whose name contains TEXT.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}

# name | sed expression (each must change the file)
mutations=(
  "noise not averaged over N ranks|s|/ (N \* (sketchSumSq - sketchSq))|/ (sketchSumSq - sketchSq)|"
  "default drift ignores the noise|s|: 1.0 / (1.0 + std::max(0.0, in.nu));|: 1.0;|"
  "call correlation ignores the noise|s|std::min(driftPerCall(in), 4.0)) / (1.0 + std::max(0.0, in.nu))|std::min(driftPerCall(in), 4.0))|"
  "momentum left out|s|return (1.0 + mu) \* (1.0 - mu \* psi) / ((1.0 - mu) \* (1.0 + mu \* psi));|return 1.0 + 0.0 * psi;|"
  "lag penalty linear in tau|s|\* tau \* tau / a;|* tau / a;|"
  "noise does not hide the lag|s|return a / (a + p);|return 1.0 / (1.0 + p + 0.0 * a);|"
  "owed calls = aligned fraction|s|return aligned / (1.0 - aligned);|return aligned;|"
  "qring owes like one encoding per rank|s|return N \* (N + 1) / 2;|return N;|"
  "qa2a owner re-encoding left out|s|return (N - 1) + N;|return N;|"
  "rescaled random-K variance off by one|s|l.omega = 1.0 / gain(s, p) - 1.0;|l.omega = 1.0 / gain(s, p);|"
  "Adam: second moment of a k-rank sum = k (noise only)|s|return k \* (k + noise) / (1.0 + noise);|return k + 0.0 * noise;|"
  "Adam: qa2a owner's re-encoding left out of the noise|s|(N - 1) \* kappa(1) + kappa(N);|N * kappa(1);|"
  "Adam: error feedback's second residual left out|s|fedBack ? 2.0 : 1.0;|fedBack ? 1.0 : 1.0;|"
  "Adam: a residual not fed back counted as two|s|fedBack ? 2.0 : 1.0;|fedBack ? 2.0 : 2.0;|"
  "Adam: quantizers keep their residual|s|return optimizer == OptimizerKind::Sgd \|\| codecNeedsFeedback(codec);|return optimizer == OptimizerKind::Sgd \|\| true;|"
  "Adam: rounding to nearest taken as unbiased|s|case CodecKind::Quant: return !codec.stochastic;|case CodecKind::Quant: return false;|"
  "Adam: the range widened without feedback|s|(fedBack ? residualRangeFactor(codec) : 1.0)|(fedBack \|\| true ? residualRangeFactor(codec) : 1.0)|"
  "Adam: a call without a state taken as fed back|s|in.namedState \&\& carriesErrorFeedback|carriesErrorFeedback|"
  "Adam: noise not averaged over N ranks|s|encodingSecondMoments(plan.algorithm, ranks, nu) / (N \* N);|encodingSecondMoments(plan.algorithm, ranks, nu) / N;|"
  "Adam: step shrinks as u / (u + noise), not its root|s|return std::sqrt(u / (u + noise));|return u / (u + noise);|"
  "Adam: progress r (2 - r) (at the best step), not r|s|return adamStepRatio(u, noise);|return adamStepRatio(u, noise) * (2.0 - adamStepRatio(u, noise));|"
  "Adam: average's second moment taken as one rank's|s|const double averaged = (1.0 + std::max(0.0, nu)) / (1.0 + N \* std::max(0.0, nu));|const double averaged = 1.0 + 0.0 * N * nu;|"
  "Adam: bins weighted by count, not sqrt(u)|s|const double w = s.binCount\[b\] \* std::sqrt(m);|const double w = s.binCount[b] + 0.0 * m;|"
  "Adam: a quantizer's residual left out of its block's range|s|const double f = L / (L - spent);|const double f = 1.0 + 0.0 * L * spent;|"
  "Adam: the residual moves one end of the range, not both|s|codec.stochastic ? 2.0 : 1.0;|codec.stochastic ? 1.0 : 1.0;|"
  "Adam: term not applied|s|g \\*= adamPlanFactor(s, plan, ranks, in);|g *= 1.0;|"
  "sign: common error averaged over N ranks|s|return std::sqrt(across) \* encodingSumK|return std::sqrt(across / ranks) * encodingSumK|"
  "sign: common error summed as powers, not amplitudes|s|return std::sqrt(across) \* encodingSumK(plan.algorithm, ranks) / std::max(1, ranks);|return std::sqrt(across * encodingSumK(plan.algorithm, ranks)) / std::max(1, ranks);|"
  "sign: error along x counted in the common part|s| - aligned \* aligned);| - 0.0 * aligned);|"
  "sign: common error left out of the gain|s|progressGain(in, common > 0 ?|progressGain(in, false ?|"
  "sign:rot: common error taken as the plain sign's|s|if (plan.codec.rotate) {|if (plan.codec.rotate \&\& false) {|"
  "sign:rot: Adam's noise includes the common part|s|std::max(0.0, s.signRotError - s.signRotCommon)|std::max(0.0, s.signRotError + 0.0 * s.signRotCommon)|"
  "sign:rot: noise left out of Adam's term|s|if (codec.kind == CodecKind::Sign && codec.rotate) return|if (false) return|"
  "credit check: no evidence taken as none realized|s|if (std::isfinite(realized)) credit_.add(realized);|credit_.add(std::isfinite(realized) ? realized : 0.0);|"
)
# shellcheck source=tests/tuner/run_mutations.sh
source tests/tuner/run_mutations.sh
run_mutations src/tuner/progress_model.cc "$build" 'ProgressModel.*:ProgressTracker.*'
