// The per-call tuner of a communicator (DESIGN.md sections 1 and 3): the
// profile (loaded, or calibrated on first use; rank 0's copy on every rank),
// the topology, the SQZ_TUNE table, and the choice of a plan for one call
// from the buffer's exactly reduced gradient statistics. Every input is
// identical on all ranks, so every rank derives the same plan.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/grad_stats.h"
#include "sqz.h"
#include "src/topology/link_topology.h"
#include "src/tuner/allreduce_shapes.h"
#include "src/tuner/cost_model.h"
#include "src/tuner/profile.h"
#include "src/tuner/progress_model.h"
#include "src/tuner/selector.h"
#include "src/tuner/stats_cadence.h"
#include "src/tuner/tune_table.h"

namespace sqz {

class Transport;

// What the statistics read besides g (GradStats' residual and timing
// fields): the owner-side residual of a qa2a chunk and where the chunk
// lies, and the seconds this rank spent outside this buffer's allreduce
// since its previous call.
struct StatsExtras {
  const float* ownerResidual = nullptr;
  size_t ownerOffset = 0, ownerCount = 0;
  double otherSeconds = 0;
  double tunerSeconds = 0;  // GradStats::tunerSeconds
  double idleSeconds = 0;   // GradStats::idleSeconds
  double planSeconds = 0;   // GradStats::planSeconds
  uint64_t sketchSeed = 0;
  // Whether this call's plan may be lossy: only then must a NaN/Inf outside
  // the sampled elements be found (an exact plan sums it as IEEE does; the
  // next lossy call scans its own g).
  bool mayBeLossy = true;
  // Whether the residual may hold anything (ErrorFeedbackState::residualDirty):
  // one known to be zeros is not read at all (as if there were none).
  bool residualOwed = true;
};

// The statistics of the gradient g for the tuner, from one read of at most
// about 2^18 elements: buffers larger than that are sampled as 1024 runs of
// one statistics block spread over the buffer (the same runs on every rank)
// and the sums scaled by the sampling factor; the tuner works on ratios, so
// it sees the buffer's shape at a fraction of the cost. Non-finite values
// are counted over the whole of g (when the plan may be lossy) and of the
// residual e (when it may hold anything), so a single NaN anywhere still
// forces the exact path; buffers up to 2^18 elements are read whole, and
// that one pass also finds them.
// The distribution (histogram, block ranges, sign blocks) is of g: the
// residual is left out of it because it holds what the previous plan's
// codec dropped, which would bias the next choice toward that codec (a
// coarse quantizer's dense residual made g + e look unsparsifiable:
// perf/results/descent_testbed.md, "What was wrong, found by measurement").
// The residual enters separately, as what the update still owes
// (residualSq and sketchResidual over the same elements).
void tunerStats(const void* input, sqzDataType_t type, const float* residual, size_t count, GradStats* stats,
                const StatsExtras& extras = {});

// What the tuner keeps per buffer (inside its ErrorFeedbackState).
//
// Statistics cadence: the statistics pass and its exchange (3 KiB to every
// peer) cost the same whatever the plan, which on a slow link is a large
// share of a top-K call (perf/results/descent_testbed.md, "Statistics
// cadence"). While the choice holds, the exchange backs off (every 2, 4,
// ... calls, up to the interval that makes it at most kStatsShare of the
// chosen plan's time, past kStatsEveryUnproven only as far as the decision's
// margin covers, and at most maxStatsEvery: src/tuner/stats_cadence.h); a
// change of plan brings it back to every call. All of it is a function of
// agreed numbers (reduced statistics, rank 0's profile), so every rank
// exchanges on the same calls.
struct TuningState {
  Selector selector;
  GradStats reduced{};       // last exchanged statistics, summed over ranks
  bool haveReduced = false;  // false until the first call (then: sync mode)
  bool current = false;      // nothing to exchange on this call
  bool fresh = false;        // `reduced` arrived after the cached plan was chosen
  PlanSpec plan;             // the plan chosen from `reduced` (valid once chosen)
  double planGain = -1;
  bool havePlan = false;
  uint32_t statsEvery = 1;       // an exchange every this many calls
  uint32_t callsSinceStats = 0;  // calls since the last exchange
  uint32_t maxStatsEvery = 1;    // 1: every call (the device path's statistics ride in its payloads)
  uint64_t exchanges = 0;        // reduced statistics received so far
  uint64_t calls = 0;            // tuned calls so far
  uint64_t statsCall = 0;        // `calls` when the statistics last sent were taken ...
  uint64_t statsSeed = 0;        // ... and their sketch's seed
  uint64_t trackedExchanges = 0; // how many of them `progress` has seen
  uint32_t callsOnPlan = 0;      // calls run with `plan` since it was chosen
  double lastCallEnd = 0;        // monotonicSeconds() at the end of the last tuned call (0: none)
  double tunerSeconds = 0;       // auto's own time on this buffer since the last exchange (GradStats::tunerSeconds)
  double lastPlanSeconds = 0;    // the time the last tuned call's plan ran (GradStats::planSeconds; 0: unknown)
  size_t statsWireBytes = 0;     // the most a rank sent a peer at the last lagged exchange (0: none yet)
  ProgressTracker progress;      // noise scale and measured lags (src/tuner/progress_model.h)
  DecisionMargin margin;         // how many calls the choice's margin covers (src/tuner/stats_cadence.h)

  // Whether this call reads and exchanges statistics (decided before the
  // call's header agreement, from agreed state only).
  // Exchanges come in pairs on consecutive calls (the second follows the
  // first, whatever the interval), so that the drift of the gradient from
  // one call to the next is measured.
  bool statsDue() const { return !haveReduced || exchanges % 2 == 1 || callsSinceStats + 1 >= statsEvery; }
  // The count sketch's seed for the next statistics: the two exchanges of a
  // pair share it (the drift compares their sketches), pairs differ.
  uint64_t sketchSeed() const { return exchanges / 2; }
  // Counts a call once its statistics (if any) were sent.
  void countCall(bool exchanged) {
    callsSinceStats = exchanged ? 0 : callsSinceStats + 1;
    ++callsOnPlan;
    ++calls;
  }

};

// The codecs auto ranks: none, bf16, q8, q4 and, for SGD (with or without
// momentum), q2 and sign:rot (the standard levels that train to the target:
// src/tuner/README.md section 8), or the comma-separated list in
// SQZ_AUTO_CODECS (as given: list "none" to keep exact among them; a call
// with NaN/Inf goes exact regardless). Throws sqzInvalidArgument for a bad
// name.
std::vector<CodecParams> autoCodecLevels(OptimizerKind optimizer = OptimizerKind::Sgd);

// SQZ_MOMENTUM: the optimizer's momentum (SGD's, or Adam's beta1), a decimal
// number in [0, 1); 0.9 when unset. Throws sqzInvalidArgument when malformed.
double momentumFromEnv();

// SQZ_OPTIMIZER: "sgd" (default; SGD with or without momentum) or "adam"
// (an optimizer that divides by the root of a second moment: Adam, AdamW,
// RMSprop, Adagrad). Throws sqzInvalidArgument for another name.
OptimizerKind optimizerFromEnv();
OptimizerKind parseOptimizerKind(const std::string& name, const char* what);

class AutoTuner {
 public:
  // nodeIds: every rank's node identity (from the rendezvous).
  // links: the classes joining ranks inside a node and between nodes
  // (src/topology/link_topology.h; host buffers: shm and tcp or ib).
  AutoTuner(int rank, const std::vector<std::string>& nodeIds, LinkClasses links = {});
  // Writes out what this process's SQZ_TUNER_LOG still holds.
  ~AutoTuner();

  const Topology& topology() const { return topo_; }
  // The SQZ_TUNE table in force. Across nodes, once the profile is known
  // (prepare), its selector takes calls from the network's half-bandwidth
  // size up rather than from 64 KiB (TuneTable::autoFromBytesFor); every
  // rank derives it from rank 0's profile, so they agree.
  const TuneTable& table() const { return table_; }
  // What ranks must agree on for auto to choose alike: the SQZ_TUNE table,
  // the codec menu (SQZ_AUTO_CODECS), SQZ_MOMENTUM and SQZ_OPTIMIZER
  // (src/call_settings.h).
  std::string agreedSettings() const;
  // The optimizer the gain model assumes (sqzCommSetOptimizer; momentum in
  // [0, 1): SGD's momentum or Adam's beta1).
  void setOptimizer(OptimizerKind kind, double momentum);
  OptimizerKind optimizer() const { return optimizer_; }
  bool ready() const { return model_ != nullptr; }

  // Collective: loads rank 0's profile (calibrating first when rank 0 has
  // none and SQZ_CALIBRATE allows) and spreads it. `broadcast(buf, bytes)`
  // broadcasts from rank 0 over the communicator. A calibration also times
  // whole plans on `count` values of `input` (the call's own buffer, only
  // read; repeated up to 2^20 elements, cut at 2^22) with the ring pipelined
  // in `chunkBytes` (see MeasuredPlans).
  // Without a buffer (input null) no plans are timed.
  template <typename Broadcast>
  void prepare(Transport& transport, Broadcast&& broadcast, const void* input = nullptr,
               sqzDataType_t type = sqzFloat32, size_t count = 0, size_t chunkBytes = 512 << 10);

  // The plan for a call of `count` elements (elementBytes each) given the
  // reduced statistics (new ones, when state.exchanges moved, also update
  // state.progress); logs the ranking when the choice changes, and every
  // decision to SQZ_TUNER_LOG when set. Without
  // error feedback (a call that names no state: src/implicit_states.h) only
  // codecs that need none compete: top-K, random-K and the scaled sign drop
  // what they leave out.
  Plan choose(TuningState& state, const GradStats& reduced, double count, int elementBytes,
              const std::string& label, bool errorFeedback = true);

  // The plan SQZ_TUNE forces for `bytes`, if any ("@auto" entries: none).
  bool forcedPlan(uint64_t bytes, PlanSpec* out) const;

 private:
  void finish(const std::string& profileJson);
  void calibrate(Transport& transport);
  // Collective, after finish() on a fresh calibration: times the flat plans
  // and auto's statistics pass on the call's buffer (every rank gets the
  // same slowest-rank numbers); rank 0 saves them with the profile.
  void timePlans(Transport& transport, const void* input, sqzDataType_t type, size_t count, size_t chunkBytes);
  Candidate build(const PlanSpec& spec, double elements, int elementBytes) const;
  // One JSON line per decision to SQZ_TUNER_LOG (rank 0): the estimates and
  // every candidate's lag, gain, time and score; buffered (written in 1 MiB
  // pieces, when a tuner is destroyed and at exit).
  void logDecision(const TuningState& state, const GradStats& reduced, double count, const std::string& label,
                   const NoiseScale& noise, const ProgressInputs& inputs, const Plan& plan) const;

  int rank_;
  std::string fingerprint_;
  Topology topo_;
  TuneTable table_;
  std::string envTable_;  // the table from the environment alone, which ranks agree on before any profile
  Profile profile_;
  std::unique_ptr<CostModel> model_;
  MeasuredPlans measured_;
  std::vector<CodecParams> levels_;
  double momentum_ = 0.9;  // SQZ_MOMENTUM: the optimizer's momentum (src/tuner/progress_model.h)
  OptimizerKind optimizer_ = OptimizerKind::Sgd;  // SQZ_OPTIMIZER
};

template <typename Broadcast>
void AutoTuner::prepare(Transport& transport, Broadcast&& broadcast, const void* input, sqzDataType_t type,
                        size_t count, size_t chunkBytes) {
  if (ready()) return;
  // Rank 0 decides whether to calibrate, so that every rank agrees.
  ProfileLoad load = loadProfile(fingerprint_);
  uint8_t calibrateNow = rank_ == 0 && load.shouldCalibrate ? 1 : 0;
  broadcast(&calibrateNow, 1);
  if (calibrateNow) calibrate(transport);
  std::string json = rank_ == 0 ? (calibrateNow ? profile_.toJson() : load.profile.toJson()) : std::string();
  uint64_t size = json.size();
  broadcast(&size, sizeof size);
  json.resize(size);
  broadcast(json.data(), size);
  finish(json);
  if (calibrateNow) timePlans(transport, input, type, count, chunkBytes);
}

}  // namespace sqz
