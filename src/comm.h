// A communicator: this rank's place in a group, its transport to the peers,
// and the algorithms it runs. Called from one thread at a time (as NCCL's);
// the C API in api.cc is its only caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "collectives/call_agreement.h"
#include "collectives/compressed_args.h"
#include "collectives/flat_plan.h"
#include "collectives/hierarchical_allreduce.h"
#include "collectives/shm_segment.h"
#include "collectives/tag_slots.h"
#include "kernels/codec_params.h"
#include "src/auto_tuner.h"
#include "src/device/device_path.h"
#include "src/error_feedback_state.h"
#include "src/implicit_states.h"
#include "src/timeline.h"
#include "src/tuner/algorithm_table.h"
#include "src/tuner/plan_name.h"
#include "sqz.h"
#include "src/bootstrap/unique_id.h"
#include "transport/ucx_transport.h"

namespace sqz {

struct CommConfig {
  size_t chunkBytes;      // SQZ_CHUNK_BYTES: pipelining granularity of the ring
  size_t directMaxBytes;  // SQZ_DIRECT_MAX_BYTES: at or below, one-round direct allreduce
  size_t minBytes;        // SQZ_MIN_BYTES: smaller buffers are never compressed
  uint32_t statsEveryMax;  // SQZ_STATS_EVERY_MAX: auto's longest statistics interval, in calls
  bool tuneSync;           // SQZ_TUNE_MODE=sync: every call reduces its statistics first
  bool sharedMemory;       // SQZ_SHM (0 or 1): ranks on one node may share a segment (collectives/shm_segment.h)
  double timeoutSeconds;   // SQZ_TIMEOUT, read once: every call's bound (not a message shape: not agreed)
  static CommConfig fromEnv();
};

// A compression policy as the user wrote it: "auto" (the tuner chooses per
// call), a codec spec ("q4", "topk:0.01"), or a plan name after '@' that
// forces algorithm and codec ("@qring:q4", "@sparse_split:topk:0.01",
// "@ring"; src/tuner/plan_name.h).
struct CompressionPolicy {
  std::string text;        // canonical form, as printed and agreed across ranks
  bool automatic = false;  // "auto"
  PlanSpec plan;           // plan.algorithm empty: chosen from the codec
  static CompressionPolicy parse(const std::string& spec);
};

// What one host allreduce does. decideCall fills the first part from this
// rank's view alone; agreeOnPlan, once every rank has seen every header,
// the rest, identically on every rank.
struct CallDecision {
  CompressionPolicy policy;
  bool mayCompress = false;  // a float sum or average the policy may compress (auto, or a lossy spec at its size)
  bool tableForced = false;  // auto, and the SQZ_TUNE table gives this size a plan (tablePlan)
  PlanSpec tablePlan;
  bool tuned = false;        // auto picks the plan from statistics (not tableForced)
  bool withStats = false;    // tuned, and this call's statistics go to every rank
  // Tuned, no statistics due, and the agreed ones chose an exact plan: the
  // call runs as a fixed exact spec's does (its header in the first message).
  bool exactKnown = false;
  std::string exactNamed;    // the exact algorithm the policy or table names ("" if none)
  ErrorFeedbackState* ef = nullptr;
  // This rank's statistics (tuned calls: the communicator's tunedStats_,
  // cleared per tuned call; null otherwise: an exact call does not clear
  // their 6 KiB on every call).
  GradStats* local = nullptr;
  CallHeader header;         // what the ranks agree on
  double tuneSeconds = 0;
  bool countTunerSeconds = false;  // tuneSeconds goes into the buffer's TuningState::tunerSeconds

  enum class Path { kNone, kExact, kLossy, kHier };
  bool nonFinite = false;    // a rank's buffer holds NaN/Inf: the call goes exact
  // Ranks inside sqzJoin add zeros: the call goes exact, by the algorithm
  // they derive from the header alone, in the call's own type.
  bool peersJoined = false;
  bool goesExact() const { return nonFinite || peersJoined; }
  PlanSpec plan;             // the lossy or hierarchical plan (empty: exact)
  Path path = Path::kNone;   // kNone: nothing to move (count == 0)
  const AlgorithmEntry* algorithm = nullptr;  // the flat one that runs (hier: between nodes)
  bool carryHeader = false;  // exact, and its algorithm's first message is the header round
  double gain = 1.0;         // the tuner's estimate (-1: a fixed plan), 1 when exact
};

// When a call started, on both clocks it reports (one clock read: the
// timeline's monotonicSeconds is the same steady clock).
struct CallClock {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double startSeconds = std::chrono::duration<double>(start.time_since_epoch()).count();
};

// What a host allreduce reports, kept raw: sqzCallInfo's names are
// formatted only when someone asks (sqzGetCallInfo, the timeline), not on
// every call.
struct CallReport {
  size_t count = 0;
  size_t bytes = 0;
  CallDecision::Path path = CallDecision::Path::kNone;
  const AlgorithmEntry* algorithm = nullptr;
  PlanSpec plan;  // lossy and hierarchical paths
  double gain = 1.0;
  CallCounters counters;
  double tuneSeconds = 0;
  double totalSeconds = 0;
};

class Communicator {
 public:
  // Collective: forms the group through the rendezvous of `id`.
  Communicator(const BootstrapId& id, int nranks, int rank);
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& nodeId(int rank) const { return nodeIds_[rank]; }

  // spec: null for the communicator's policy; state: null for an implicit
  // call (src/implicit_states.h: no residual carried across calls).
  void allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                 const char* spec = nullptr, ErrorFeedbackState* state = nullptr);
  // Device (or managed) buffers: enqueued on `stream`, returns without
  // waiting for the GPU (src/device/device_path.h). stateKey: an explicit
  // sqzState, or null for an implicit call (src/implicit_states.h).
  void allReduceDevice(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op, void* stream,
                       const char* spec, const void* stateKey);
  // Device calls use this NCCL communicator (not owned); before any device call.
  void adoptNccl(void* ncclComm);
  // An explicit state (sqzState_t) is destroyed: drop what the device path keeps for it.
  void forgetState(const void* key);
  // The first asynchronous error of device calls, or sqzSuccess.
  sqzResult_t asyncError(std::string* why);
  // The last allreduce's report (sqzGetCallInfo).
  sqzCallInfo lastCall() const { return lastIsHost_ ? callInfo(lastReport_) : lastCall_; }
  // How many implicit calls' tuning states are kept (bounded: src/implicit_states.h).
  size_t implicitStates() const { return implicit_.size(); }
  Timeline* timeline() { return timeline_.get(); }
  void broadcast(const void* send, void* recv, size_t count, sqzDataType_t type, int root);
  void allGather(const void* send, void* recv, size_t count, sqzDataType_t type);
  void barrier();
  // sqzJoin: serves the other ranks' host allreduces with zeros until every
  // rank has joined; returns the rank that joined last (src/comm_join.cc).
  int join();
  // sqzCommSetCallTag: the next call's header carries `tag` (0: none).
  void setCallTag(uint64_t tag) { callTag_ = tag; }

  void setCompression(const std::string& spec);
  const std::string& compression() const { return policy_.text; }
  // sqzCommSetOptimizer: what auto's gain model assumes of the optimizer
  // (src/tuner/README.md); part of the settings every call's header checks.
  void setOptimizer(const std::string& kind, double momentum);

  // Stops all communication now; peers' pending operations fail.
  void abort();

  std::string lastError;

 private:
  uint32_t nextSeq() { return seq_++ & tags::kMask; }
  uint64_t takeCallTag() {
    const uint64_t t = callTag_;
    callTag_ = 0;
    return t;
  }
  // The header exchange of an exact collective; returns the call's sequence number.
  uint32_t agreeOnExactCall(CollectiveKind kind, size_t count, int type, int root, const Deadline& deadline);
  // A host allreduce in four steps: decide (this rank's view: policy,
  // buffer state, statistics, header), agree (the header exchange, then the
  // plan every rank derives alike), run the plan, report (sqzCallInfo).
  // `call`: this communicator's allreduce count, the RNG step of an implicit call.
  CallDecision decideCall(const AllreduceArgs& a, CompressionPolicy policy, ErrorFeedbackState* state,
                          uint64_t call);
  void agreeOnPlan(const AllreduceArgs& a, CallDecision& d);
  CallCounters runPlan(const AllreduceArgs& a, CallDecision& d);
  void report(const AllreduceArgs& a, CallDecision& d, const CallCounters& counters, const CallClock& clock);
  sqzCallInfo callInfo(const CallReport& r) const;
  // A wait bound starting now (SQZ_TIMEOUT as read when the communicator was made).
  Deadline callDeadline() const { return Deadline(config_.timeoutSeconds); }
  // The algorithm a call with `codec` runs when its plan names none
  // (deterministic: identical on all ranks). withShm false: one that does
  // not go through the shared segment.
  const AlgorithmEntry& chooseAlgorithm(const CodecParams& codec, size_t count, sqzDataType_t type,
                                        bool withShm = true) const;
  // chooseAlgorithm without a codec, for the host calls' agreement (the last
  // shape's choice kept: lastExactChoice_).
  const AlgorithmEntry& exactDefault(size_t count, sqzDataType_t type, bool withShm);
  // The arguments of a lossy call of `plan` on `ef`'s buffer (advances its
  // step). Where the plan's codecs carry no error feedback under this
  // optimizer (carriesErrorFeedback) but the residual still owes mass, the
  // call sends g + e from `owed` (float32, in place), clears e, and keeps
  // none: the caller stores `owed` into a.recv afterwards.
  CompressedArgs compressedArgs(const AllreduceArgs& a, const PlanSpec& plan, ErrorFeedbackState& ef,
                                CallCounters* counters, std::vector<float>* owed);
  // An exact allreduce by `algorithm`; with a dirty residual, g + e is sent and e cleared.
  // header: not yet agreed, the algorithm's first message carries it.
  void runExact(const AllreduceArgs& a, const AlgorithmEntry& algorithm, ErrorFeedbackState* ef,
                CallCounters* counters, const CallHeader* header = nullptr);
  // g + e of a dirty residual into `sum` (float32), e cleared: what a call
  // that keeps no residual sends instead of g.
  static void takeOwed(const AllreduceArgs& a, ErrorFeedbackState& ef, std::vector<float>* sum);
  // Sum of every rank's statistics as the lagged exchanges make it
  // (SumExchange: bfloat16 on the wire, added in rank order, identical
  // everywhere). Returns the most bytes a rank sent a peer.
  size_t reduceStats(GradStats* stats);
  // `auto`: the plan for this call (a collective on first use of the tuner).
  PlanSpec choosePlan(const void* send, size_t count, sqzDataType_t type, ErrorFeedbackState& ef,
                      const GradStats& local, bool withStats, double* gain);
  // Chooses the buffer's plan from its last reduced statistics unless the
  // plan chosen from them stands.
  void refreshPlan(size_t count, sqzDataType_t type, ErrorFeedbackState& ef);
  // Whether this tuned call's plan is already known (lagged agreement) and
  // exact.
  bool knownExactPlan(size_t count, sqzDataType_t type, ErrorFeedbackState& ef);
  // Before the caller's thread uses the host transport: the device path's
  // progress thread must be idle (and its errors are this call's errors).
  void drainDevice();
  friend class DevicePath;
  friend struct DevicePath::Impl;

  int rank_;
  int size_;
  CommConfig config_;
  std::unique_ptr<UcxTransport> transport_;
  std::vector<std::string> nodeIds_;
  std::unique_ptr<FlatAllreduces> flat_;  // the flat algorithms on the whole group
  // Every rank on this node and the segment mapped: every call's first
  // round goes through it (collectives/shm_segment.h).
  std::unique_ptr<ShmSegment> shm_;
  CompressionPolicy policy_;
  std::unique_ptr<AutoTuner> tuner_;
  HierarchyGroups hierarchy_;  // empty when ranks are not spread evenly over several nodes
  bool multiNode_ = false;     // ranks on more than one node
  ImplicitStates implicit_;    // the state of calls that name none
  uint64_t calls_ = 0;         // allreduce calls so far, host and device (identical on all ranks)
  double lastAllReduceEnd_ = 0;  // monotonicSeconds() when the last host allreduce ended (0: none)
  uint32_t settingsHash_ = 0;  // src/call_settings.h
  uint64_t seed_ = 0;  // shared by all ranks (from the unique id)
  uint32_t seq_ = 0;
  uint64_t callTag_ = 0;  // for the next call's header (sqzCommSetCallTag)
  GradStats tunedStats_{};  // a tuned call's statistics (CallDecision::local)
  // The last host call's exactDefault, by its shape.
  struct ExactChoice {
    size_t count = 0;
    sqzDataType_t type = sqzFloat32;
    bool withShm = false;
    const AlgorithmEntry* entry = nullptr;
  };
  ExactChoice lastExactChoice_;
  CallReport lastReport_;   // the last host allreduce
  sqzCallInfo lastCall_{};  // the last device allreduce
  bool lastIsHost_ = false;
  std::unique_ptr<Timeline> timeline_;  // SQZ_TIMELINE
  std::unique_ptr<DevicePath> device_;  // last: destroyed (drained) before the transport
};

}  // namespace sqz

// The opaque handle of the C API.
struct sqzComm {
  std::unique_ptr<sqz::Communicator> impl;
};

// The opaque state handle of the C API.
struct sqzState {
  sqzComm* comm = nullptr;
  std::unique_ptr<sqz::ErrorFeedbackState> impl;
};
