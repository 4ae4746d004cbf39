#include "src/auto_tuner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "collectives/codec_buffers.h"
#include "collectives/sum_exchange.h"
#include "common/dtype.h"
#include "common/env.h"
#include "common/error.h"
#include "common/log.h"
#include "common/strict_number.h"
#include "kernels/cpu_codec.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/calibration.h"
#include "src/tuner/topology_fingerprint.h"

namespace sqz {

void tunerStats(const void* input, sqzDataType_t type, const float* residual, size_t count, GradStats* stats,
                const StatsExtras& extras) {
  // 1024 runs of one statistics block (256 elements) spread evenly over the
  // whole buffer, first and last elements included: a small layer anywhere
  // in a flattened bucket (an output layer at the end holding the largest
  // gradients) is sampled in proportion to its size, not skipped.
  constexpr size_t kRun = kStatsBlockSize, kBudget = size_t(1) << 18, kRuns = kBudget / kRun;
  clearStats(stats);
  // A residual known to hold nothing (a state whose codecs keep none, e.g. a
  // quantizer under Adam) is not read: its sampled copy and sketch cost as
  // much as g's (auto's statistics took 10.5 ms an exchange on the CNN at
  // 100 Mbit/s with it, 3.9 ms on an implicit state without).
  if (!extras.residualOwed) residual = nullptr;
  const float* owner = extras.ownerResidual;
  double own[GradStats::kSketch] = {};
  std::vector<float> owed;
  double residualBad = 0;  // non-finite values seen in the residual's read part
  // The residual's squares and sketch over [off, off + n): what the update
  // still owes there (the rank's own residual, plus the owner's).
  auto addResidual = [&](size_t off, size_t n) {
    if (!residual) return;
    owed.assign(residual + off, residual + off + n);
    for (size_t i = 0; owner && i < n; ++i) {
      const size_t j = off + i;
      if (j >= extras.ownerOffset && j - extras.ownerOffset < extras.ownerCount) owed[i] += owner[j - extras.ownerOffset];
    }
    for (float v : owed) {
      const bool finite = std::isfinite(v);
      stats->residualSq += finite ? static_cast<double>(v) * v : 0.0;
      residualBad += !finite;
    }
    statsSketchCpu(owed.data(), sqzFloat32, n, off, extras.sketchSeed, stats->sketchResidual);
  };
  if (count <= kBudget) {
    gradStatsCpu(input, type, nullptr, count, stats);
    addResidual(0, count);
    statsSketchCpu(input, type, count, 0, extras.sketchSeed, own);
  } else {
    size_t sampled = 0;
    for (size_t r = 0; r < kRuns; ++r) {
      const size_t off = static_cast<size_t>(static_cast<unsigned __int128>(count - kRun) * r / (kRuns - 1));
      gradStatsCpu(elementPtr(input, type, off), type, nullptr, kRun, stats);
      addResidual(off, kRun);
      statsSketchCpu(elementPtr(input, type, off), type, kRun, off, extras.sketchSeed, own);
      sampled += kRun;
    }
    // The distribution's sums and residualSq cover the sampled elements:
    // scaled to the buffer (the sketches are only ever compared with
    // sketches of the same elements).
    const double scale = static_cast<double>(count) / static_cast<double>(sampled);
    double* fields = reinterpret_cast<double*>(stats);
    for (size_t i = 0; i < GradStats::kDoubles; ++i) fields[i] *= scale;
    for (int k = 0; k < GradStats::kSketch; ++k) stats->sketchResidual[k] /= scale;
    // The sampled runs' count stands when the plan is exact.
    if (extras.mayBeLossy && stats->nonFinite == 0 && hasNonFinite(input, type, count)) stats->nonFinite = 1.0;
    if (residual && extras.residualOwed && stats->nonFinite == 0 && residualBad == 0 &&
        hasNonFinite(residual, sqzFloat32, count))
      stats->nonFinite = 1.0;
  }
  // Non-finite residual values read above (all of them when read whole).
  if (residualBad > 0) stats->nonFinite += 1.0;
  stats->residualRanks = residual ? 1.0 : 0.0;
  for (int k = 0; k < GradStats::kSketch; ++k) {
    stats->sketch[k] = own[k];
    stats->sketchSq += own[k] * own[k];
  }
  stats->sketchRanks = 1.0;
  stats->otherSeconds = extras.otherSeconds;
  stats->tunerSeconds = extras.tunerSeconds;
  stats->idleSeconds = extras.idleSeconds;
  stats->planSeconds = extras.planSeconds;
}

std::vector<CodecParams> autoCodecLevels(OptimizerKind optimizer) {
  // The standard levels that reach the target on loopback in the training
  // matrix (src/tuner/README.md section 8; perf/results/training.md): the
  // plain scaled sign and top-K stay out until they do; the rotated sign and
  // q2 reach it with SGD and momentum, not with Adam.
  const std::string menu =
      envString("SQZ_AUTO_CODECS", optimizer == OptimizerKind::Adam ? "none,bf16,q8,q4" : "none,bf16,q8,q4,q2,sign:rot");
  std::vector<CodecParams> out;
  size_t pos = 0;
  while (pos <= menu.size()) {
    const size_t comma = std::min(menu.find(',', pos), menu.size());
    const std::string name = menu.substr(pos, comma - pos);
    if (!name.empty()) {
      try {
        out.push_back(parseCodecSpec(name));
      } catch (const Error& e) {
        fail(sqzInvalidArgument, "SQZ_AUTO_CODECS=%s: %s", menu.c_str(), e.what());
      }
    }
    pos = comma + 1;
  }
  SQZ_REQUIRE(!out.empty(), sqzInvalidArgument, "SQZ_AUTO_CODECS=%s: names no codec", menu.c_str());
  return out;
}

double momentumFromEnv() {
  const std::string text = envString("SQZ_MOMENTUM");
  if (text.empty()) return 0.9;
  double m = 0;
  SQZ_REQUIRE(parseDecimal(text.c_str(), 1.0, &m) && m < 1.0, sqzInvalidArgument,
              "SQZ_MOMENTUM=%s: expected a decimal number in [0, 1) (the optimizer's momentum or Adam's beta1)",
              text.c_str());
  return m;
}

OptimizerKind parseOptimizerKind(const std::string& name, const char* what) {
  if (name == "sgd") return OptimizerKind::Sgd;
  if (name == "adam") return OptimizerKind::Adam;
  fail(sqzInvalidArgument, "%s=%s: expected sgd or adam (an optimizer dividing by a second moment: Adam, AdamW, "
       "RMSprop, Adagrad)", what, name.c_str());
}

OptimizerKind optimizerFromEnv() {
  const std::string text = envString("SQZ_OPTIMIZER");
  return text.empty() ? OptimizerKind::Sgd : parseOptimizerKind(text, "SQZ_OPTIMIZER");
}

void AutoTuner::setOptimizer(OptimizerKind kind, double momentum) {
  SQZ_REQUIRE(momentum >= 0.0 && momentum < 1.0, sqzInvalidArgument,
              "optimizer momentum %g: expected a number in [0, 1) (SGD's momentum or Adam's beta1)", momentum);
  optimizer_ = kind;
  momentum_ = momentum;
  levels_ = autoCodecLevels(kind);
}

std::string AutoTuner::agreedSettings() const {
  std::string codecs;
  for (const CodecParams& c : levels_) codecs += codecName(c) + ",";
  char momentum[32];
  std::snprintf(momentum, sizeof momentum, "%.17g", momentum_);
  return envTable_ + ";auto_codecs=" + codecs + ";momentum=" + momentum +
         ";optimizer=" + (optimizer_ == OptimizerKind::Adam ? "adam" : "sgd");
}

AutoTuner::AutoTuner(int rank, const std::vector<std::string>& nodeIds, LinkClasses links) : rank_(rank) {
  fingerprint_ = topologyFingerprint(nodeIds, false);
  std::map<std::string, int> perNode;
  for (const auto& id : nodeIds) ++perNode[id];
  const int nodes = static_cast<int>(perNode.size());
  bool uniform = true;
  for (const auto& kv : perNode) uniform = uniform && kv.second == perNode.begin()->second;
  // A non-uniform layout is tuned as one flat group on the network.
  topo_.nodes = uniform ? nodes : static_cast<int>(nodeIds.size());
  topo_.ranksPerNode = uniform ? perNode.begin()->second : 1;
  topo_.intra = links.intra;
  topo_.inter = links.inter;
  topo_.device = Device::Cpu;
  table_ = TuneTable::fromEnv();
  envTable_ = table_.toString();
  momentum_ = momentumFromEnv();
  optimizer_ = optimizerFromEnv();
  levels_ = autoCodecLevels(optimizer_);
  SQZ_INFO("tuner: %d node(s) x %d rank(s), table %s", topo_.nodes, topo_.ranksPerNode, table_.toString().c_str());
}

void AutoTuner::calibrate(Transport& transport) {
  CalibrationOptions options;
  options.quick = calibrateMode() != CalibrateMode::Full;
  SQZ_INFO("tuner: calibrating the %s link (%s)", linkClassName(topo_.flatLink()), options.quick ? "quick" : "full");
  LinkCurve curve = measureRingStepCurve(transport, options);
  const double round = measureCallRoundSeconds(transport, options);
  CalibrationOptions burstOptions = options;
  burstOptions.tagSeq = options.tagSeq + tags::kBurstSeq;
  const double burst = topo_.nodes > 1 ? measureLinkBurstBytes(transport, burstOptions) : 0.0;
  // Every rank measures the codecs at once, as every rank encodes at once
  // in a call (ranks sharing cores slow each other down); rank 0's numbers count.
  CodecThroughput codecs = measureCpuCodecThroughput(options.quick);
  if (rank_ != 0) return;
  profile_ = defaultProfile();
  profile_.fingerprint = fingerprint_;
  profile_.source = "measured";
  profile_.setCurve(topo_.flatLink(), curve, "measured by sqz at communicator init");
  profile_.codecs = codecs;
  profile_.callOverheadSeconds = round;
  profile_.linkBurstBytes = burst;
  try {
    saveProfile(profile_, profilePath(fingerprint_));
  } catch (const std::exception& e) {
    SQZ_WARN("tuner: could not save the profile: %s", e.what());
  }
}

void AutoTuner::finish(const std::string& profileJson) {
  try {
    profile_ = Profile::fromJson(profileJson);
  } catch (const std::exception& e) {
    SQZ_WARN("tuner: rank 0's profile is unreadable (%s); using the defaults", e.what());
    profile_ = defaultProfile();
  }
  model_ = std::make_unique<CostModel>(profile_, topo_.device);
  if (topo_.nodes > 1) {
    const uint64_t autoFrom = TuneTable::autoFromBytesFor(profile_.curve(topo_.flatLink()));
    if (autoFrom != TuneTable::kAutoFromBytes) {
      SQZ_INFO("tuner: auto decides calls from %llu bytes up (the %s link's half-bandwidth size, at least 4 KiB)",
               static_cast<unsigned long long>(autoFrom), linkClassName(topo_.flatLink()));
      table_ = TuneTable::fromEnv(autoFrom);
    }
  }
  measured_ = MeasuredPlans(profile_, *model_, [this](const PlanSpec& spec, double n, int elementBytes) {
    return build(spec, n, elementBytes);
  });
  if (!measured_.empty())
    SQZ_INFO("tuner: plans timed on %.0f elements (statistics pass %.3f ms):\n%s", profile_.plans.elements,
             profile_.plans.tuneSeconds * 1e3, measured_.describe().c_str());
}

Candidate AutoTuner::build(const PlanSpec& spec, double elements, int elementBytes) const {
  return candidateFor(spec, elements, topo_, elementBytes);
}

void AutoTuner::timePlans(Transport& transport, const void* input, sqzDataType_t type, size_t count,
                          size_t chunkBytes) {
  if (transport.size() < 2 || input == nullptr || count == 0) return;
  // The job's own buffer, capped so that calibration stays short, and a
  // small one repeated up to 2^20 elements: a correction is scaled per
  // element to other sizes, and on a small buffer it would be mostly fixed
  // per-call costs, which must not grow with a large call.
  const size_t n = std::min(std::max(count, size_t(1) << 20), size_t(1) << 22);
  const int elementBytes = static_cast<int>(dataTypeSize(type));
  const void* jobInput = input;
  std::vector<unsigned char> tiled;
  if (n > count) {
    const size_t have = count * elementBytes;
    tiled.resize(n * elementBytes);
    for (size_t at = 0; at < tiled.size(); at += have)
      std::memcpy(tiled.data() + at, input, std::min(have, tiled.size() - at));
    input = tiled.data();
  }
  CalibrationOptions options;
  options.quick = calibrateMode() != CalibrateMode::Full;
  options.chunkBytes = chunkBytes;
  if (!options.quick) {
    options.planBudgetSeconds = 0.5;
    options.planTotalSeconds = 10.0;
  }
  // auto's own per-call pass (statistics of g + e), timed on every rank at once.
  std::vector<float> residual(n, 0.0f);
  std::vector<double> tuneTimes;
  for (int rep = 0; rep <= 3; ++rep) {
    GradStats s;
    const auto t0 = std::chrono::steady_clock::now();
    tunerStats(input, type, residual.data(), n, &s);
    if (rep > 0) tuneTimes.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(tuneTimes.begin(), tuneTimes.end());
  uint32_t slot = tags::kTuneTimingSlot;  // clear of measurePlanSeconds's slots
  const double tuneSeconds = slowestRank(transport, tuneTimes[tuneTimes.size() / 2], options, &slot);
  // Every flat candidate at a size, with the component model's price.
  auto plansAt = [&](size_t elements) {
    std::vector<PlanToTime> plans;
    for (const Candidate& c : allreduceCandidates(static_cast<double>(elements), topo_, levels_, elementBytes)) {
      if (c.spec.hierarchical) continue;
      const CostBreakdown b = model_->evaluate(c);
      plans.push_back({c.spec, b.seconds - b.overheadSeconds});
    }
    return plans;
  };
  PlanTimings timings;
  timings.elements = static_cast<double>(n);
  timings.elementBytes = elementBytes;
  timings.tuneSeconds = tuneSeconds;
  timings.seconds = measurePlanSeconds(transport, plansAt(n), input, type, n, options);
  profile_.plans = timings;
  if (count < n) {
    // The job's own buffer as well: a small call's costs are mostly per
    // message and per phase, which the tiled timings spread per element.
    // Back to back after draining the links, as a job's consecutive calls
    // run on a real link, where no shaper saves credit while the ranks wait.
    // Drained before every plan: drained once, at 100 Mbit/s the plan after
    // gather:sign:rot (CPU-bound, its link idle half the time) rode the
    // credit that one saved, 170-250 us a call for qring:q8 where its bytes
    // take 1.05 ms (three calibrations, each with one such plan).
    CalibrationOptions atJobSize = options;
    atJobSize.tagSeq = options.tagSeq + 2 * tags::kPlanRunSeqs;  // clear of the tiled pass's
    atJobSize.planIdleSeconds = 0;
    atJobSize.planRepeats = options.quick ? 7 : 15;
    atJobSize.planTotalSeconds = options.quick ? 1.0 : 10.0;
    atJobSize.planDrainBytes = kCalibrationDrainBytes / 2;
    PlanTimings t;
    t.elements = static_cast<double>(count);
    t.elementBytes = elementBytes;
    t.seconds = measurePlanSeconds(transport, plansAt(count), jobInput, type, count, atJobSize);
    profile_.plansAtJobSize = t;
  }
  // model_ reads profile_ by reference; the corrections are rebuilt from it.
  measured_ = MeasuredPlans(profile_, *model_, [this](const PlanSpec& spec, double elements, int eb) {
    return build(spec, elements, eb);
  });
  SQZ_INFO("tuner: timed %zu plans on %zu elements and %zu on %zu (statistics pass %.3f ms):\n%s",
           timings.seconds.size(), n, profile_.plansAtJobSize.seconds.size(), count, tuneSeconds * 1e3,
           measured_.describe().c_str());
  if (rank_ != 0) return;
  try {
    saveProfile(profile_, profilePath(fingerprint_));
  } catch (const std::exception& e) {
    SQZ_WARN("tuner: could not save the profile: %s", e.what());
  }
}

namespace {

// SQZ_TUNER_LOG, one per process (every communicator's rank 0 appends).
// Its lines go out in 1 MiB writes, when a communicator is destroyed and at
// exit (which flushes every open stream), not one write per decision:
// flushed per line (3.4 KB each on the logistic regression), the log made
// auto's training 6% slower on loopback (perf/results/training.md,
// "Decision log"). Never destroyed, so a communicator destroyed during exit
// (Python's atexit) still finds it.
class DecisionLogFile {
 public:
  static DecisionLogFile& get() {
    static DecisionLogFile* log = new DecisionLogFile;
    return *log;
  }
  bool open() const { return file_ != nullptr; }
  void write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::fwrite(line.data(), 1, line.size(), file_);
  }
  void flush() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (file_) std::fflush(file_);
  }

 private:
  DecisionLogFile() {
    const std::string path = envString("SQZ_TUNER_LOG");
    if (path.empty()) return;
    file_ = std::fopen(path.c_str(), "a");
    if (!file_) {
      SQZ_WARN("tuner: cannot write SQZ_TUNER_LOG=%s", path.c_str());
      return;
    }
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  std::mutex mutex_;
  FILE* file_ = nullptr;
};

}  // namespace

Plan AutoTuner::choose(TuningState& state, const GradStats& reduced, double count, int elementBytes,
                       const std::string& label, bool errorFeedback) {
  const int ranks = topo_.ranks();
  // The residual these statistics saw was left by the calls before them:
  // it measures the current plan once that plan ran two calls or more (and
  // so does the previous call's GradStats::planSeconds).
  const bool steady = state.havePlan && state.callsOnPlan >= 2;
  const bool newExchange = state.exchanges != state.trackedExchanges;
  if (newExchange) {
    state.progress.update(reduced, ranks, state.statsCall, state.statsSeed,
                          steady ? planName(state.plan) : std::string(), steady ? &state.plan : nullptr);
    state.trackedExchanges = state.exchanges;
  }
  std::vector<Candidate> candidates = allreduceCandidates(count, topo_, levels_, elementBytes);
  if (!errorFeedback) {
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const Candidate& c) {
                                      return codecNeedsFeedback(c.spec.codec) || codecNeedsFeedback(c.spec.intraCodec);
                                    }),
                     candidates.end());
  }
  // A tuned call first reads g once for its statistics (tunerStats: at
  // most 2^18 sampled elements, plus a non-finite scan of g and e): timed
  // at calibration, else priced from the stats throughput; they then go to
  // every peer (lagged agreement), as large as the last exchange's largest
  // (every rank knows it; until then, the most they can take). Plans timed
  // whole at calibration carry their correction (MeasuredPlans).
  // With the statistics cadence (TuningState) that cost is shared by the
  // calls between two exchanges.
  // Once exchanges have run, what they cost where they run, if more: on
  // 2 cores shared by 4 ranks the statistics of 7840 values took 190 us a
  // rank against calibration's 63, and at 1 Gbit/s that priced an
  // exchange every 10 calls (two in a pair) where their 2% share allows 30,
  // which made auto 14% slower a step than exact training on the same plan
  // (perf/results/training.md, "What auto's own work costs").
  const double statsBytes = static_cast<double>(
      state.statsWireBytes > 0 ? state.statsWireBytes : SumExchange::maxWireBytes(GradStats::kDoubles));
  const double statsSeconds = std::max(
      state.progress.tunerSeconds(),
      measured_.tuneSeconds(count, profile_.codecs.statsSeconds(topo_.device, std::min(count, 262144.0))) +
          model_->stageTransferSeconds(statsExchangeStage(topo_, statsBytes)));
  const double statsShare = statsSeconds / std::max<uint32_t>(1, state.statsEvery);
  measured_.apply(candidates, count, *model_, statsShare);
  // Between nodes, a link that saves credit while idle passes the bytes
  // its idle time before the call refilled at once: on the testbed's
  // 1 Gbit/s links (a 256 KB tbf bucket) exact training of the logistic
  // regression, 47 KB a rank a step, was the fastest spec, while drained
  // timings price those bytes at 0.38 ms a call (perf/results/training.md,
  // sessions of 2026-12-06 14:42 and 17:35 UTC; the second for why the cap
  // includes each plan's correction, which is not shared).
  // The credit is checked against what the calls took (linkCreditRealized:
  // the plan that ran, priced with and without it, beside its last call),
  // for the decision log only: applied, it did not make training faster
  // (src/tuner/README.md, "The credit is checked against the calls"). So
  // only the rank that writes an open log checks it.
  if (topo_.nodes > 1) {
    if (rank_ == 0 && DecisionLogFile::get().open() && newExchange && steady && reduced.planSeconds > 0) {
      const std::string ran = planName(state.plan);
      auto it = std::find_if(candidates.begin(), candidates.end(),
                             [&](const Candidate& c) { return c.name() == ran; });
      if (it != candidates.end()) {
        std::vector<Candidate> one{*it};
        const double uncredited = model_->evaluate(one.front()).seconds - statsShare;
        applyLinkCredit(one, *model_, topo_.inter, state.progress.idleSeconds(), statsShare);
        const double credited = model_->evaluate(one.front()).seconds - statsShare;
        state.progress.checkCredit(linkCreditRealized(uncredited, credited, reduced.planSeconds / ranks));
      }
    }
    applyLinkCredit(candidates, *model_, topo_.inter, state.progress.idleSeconds(), statsShare);
  }
  // The exact plans (always built) go when the menu leaves exact out.
  const bool exactInMenu =
      std::any_of(levels_.begin(), levels_.end(), [](const CodecParams& c) { return c.kind == CodecKind::None; });
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [&](const Candidate& c) {
                                    return !exactInMenu && c.spec.codec.kind == CodecKind::None &&
                                           c.spec.intraCodec.kind == CodecKind::None;
                                  }),
                   candidates.end());
  const NoiseScale noise = state.progress.noise(ranks);
  ProgressInputs inputs = state.progress.inputs(ranks, momentum_, optimizer_);
  inputs.namedState = errorFeedback;
  const ProgressTracker& progress = state.progress;
  const GainOf gainOf = [&](const Candidate& c) {
    return planGain(reduced, c.spec, ranks, inputs, progress.lagScale(c.name()));
  };
  Plan plan = state.selector.choose(candidates, reduced, gainOf, *model_, label, progress.otherSeconds());
  if (plan.changed) state.callsOnPlan = 0;
  // The margin is measured between the calls whose statistics chose.
  const double marginCalls =
      state.margin.update(plan, state.selector.hysteresis(), state.statsCall,
                          model_->profile().costModel.usesTime() ? statsShare : 0.0);
  const uint32_t every = nextStatsEvery(state.statsEvery, plan.changed, statsSeconds, plan.chosen.cost.seconds,
                                        state.maxStatsEvery, marginCalls);
  if (every != state.statsEvery)
    SQZ_TRACE("tuner: %s: statistics (%.3f ms) every %u call(s) of %s (%.3f ms; margin covers %.3g calls)",
              label.c_str(), statsSeconds * 1e3, every, plan.name().c_str(), plan.chosen.cost.seconds * 1e3,
              marginCalls);
  state.statsEvery = every;
  if (rank_ == 0) logDecision(state, reduced, count, label, noise, inputs, plan);
  return plan;
}

AutoTuner::~AutoTuner() {
  if (rank_ == 0) DecisionLogFile::get().flush();
}

void AutoTuner::logDecision(const TuningState& state, const GradStats& reduced, double count,
                            const std::string& label, const NoiseScale& noise, const ProgressInputs& inputs,
                            const Plan& plan) const {
  DecisionLogFile& file = DecisionLogFile::get();
  if (!file.open()) return;
  nlohmann::json j;
  j["buffer"] = label;
  j["count"] = count;
  j["exchanges"] = state.exchanges;
  j["ranks"] = topo_.ranks();
  j["sum_sq"] = reduced.sumSq;
  j["residual_sq"] = reduced.residualSq;
  j["sign_kept"] = reduced.signKept;
  j["sign_rot_common"] = reduced.signRotCommon;
  j["sign_rot_error"] = reduced.signRotError;
  j["nu"] = noise.noise;
  j["nu_known"] = noise.known;
  j["signal_sq"] = noise.signalSq;
  j["drift"] = inputs.drift;
  j["momentum_factor"] = momentumFactor(inputs.momentum, callCorrelation(inputs));
  j["drift_known"] = inputs.driftKnown;
  j["calls"] = state.calls;
  j["plan_before"] = state.havePlan ? planName(state.plan) : std::string();
  j["measured_lag"] = std::isfinite(state.progress.measuredLag()) ? state.progress.measuredLag() : -1e300;
  j["other_s"] = state.progress.otherSeconds();
  j["tuner_s"] = state.progress.tunerSeconds();
  j["idle_s"] = state.progress.idleSeconds();
  j["plan_s"] = reduced.planSeconds / topo_.ranks();
  j["credit_realized"] = state.progress.creditRealized();
  j["chosen"] = plan.name();
  j["stats_every"] = state.statsEvery;
  j["margin_calls"] = std::isfinite(state.margin.calls()) ? state.margin.calls() : 1e300;
  nlohmann::json cands = nlohmann::json::array();
  for (const ScoredCandidate& c : plan.ranked) {
    const double lag = predictedLag(reduced, c.candidate.spec, topo_.ranks());
    cands.push_back({{"plan", c.candidate.name()},
                     {"lag", std::isfinite(lag) ? lag : -1.0},
                     {"lag_scale", state.progress.lagScale(c.candidate.name())},
                     {"adam", adamPlanFactor(reduced, c.candidate.spec, topo_.ranks(), inputs)},
                     {"gain", c.gain},
                     {"seconds", c.cost.seconds},
                     {"score", c.score}});
  }
  j["candidates"] = cands;
  // The standard levels on the algorithm a fixed spec would run, whether in
  // auto's menu or not (what perf/train/acceptance.py correlates): the
  // component model with the link's credit, without the whole-plan timings.
  nlohmann::json shadow = nlohmann::json::array();
  for (const CodecParams& codec : standardCodecLevels()) {
    for (const std::string& algorithm : algorithmsFor(codec)) {
      PlanSpec spec;
      spec.algorithm = algorithm;
      spec.codec = codec;
      std::vector<Candidate> one{candidateFor(spec, count, topo_, 4)};
      if (topo_.nodes > 1) applyLinkCredit(one, *model_, topo_.inter, state.progress.idleSeconds());
      const Candidate& c = one.front();
      const double lag = predictedLag(reduced, spec, topo_.ranks());
      shadow.push_back({{"plan", c.name()},
                        {"lag", std::isfinite(lag) ? lag : -1.0},
                        {"gain", planGain(reduced, spec, topo_.ranks(), inputs, state.progress.lagScale(c.name()))},
                        {"seconds", model_->evaluate(c).seconds}});
    }
  }
  j["standard"] = shadow;
  file.write(j.dump() + "\n");
}

bool AutoTuner::forcedPlan(uint64_t bytes, PlanSpec* out) const {
  auto entry = table_.lookup("allreduce", MemoryType::Host, bytes);
  if (!entry || entry->automatic) return false;
  *out = entry->plan;
  return true;
}

}  // namespace sqz
