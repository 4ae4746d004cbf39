#include "src/comm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "collectives/allgather.h"
#include "collectives/broadcast.h"
#include "collectives/call_agreement.h"
#include "collectives/shm_allreduce.h"
#include "collectives/shm_rs_allreduce.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/log.h"
#include "collectives/codec_buffers.h"
#include "collectives/sum_exchange.h"
#include "collectives/tag_slots.h"
#include "kernels/cpu_codec.h"
#include "src/bootstrap/peer_info.h"
#include "src/bootstrap/rendezvous.h"
#include "src/call_settings.h"
#include "src/codec/codec_spec.h"
#include "src/topology/link_topology.h"
#include "src/topology/node_id.h"
#include "src/tuner/algorithm_table.h"
#include "src/tuner/progress_model.h"
#include "src/tuner/stats_cadence.h"

namespace sqz {

CommConfig CommConfig::fromEnv() {
  CommConfig c;
  c.chunkBytes = envBytes("SQZ_CHUNK_BYTES", 512 << 10, 1);
  c.directMaxBytes = envBytes("SQZ_DIRECT_MAX_BYTES", 12 << 10);
  c.minBytes = envBytes("SQZ_MIN_BYTES", 64 << 10);
  c.statsEveryMax = static_cast<uint32_t>(envUnsigned("SQZ_STATS_EVERY_MAX", kStatsEveryBound, 1, 1u << 20));
  const std::string mode = envString("SQZ_TUNE_MODE", "lagged");
  SQZ_REQUIRE(mode == "lagged" || mode == "sync", sqzInvalidArgument, "SQZ_TUNE_MODE=%s: expected lagged or sync",
              mode.c_str());
  c.tuneSync = mode == "sync";
  c.sharedMemory = envUnsigned("SQZ_SHM", 1, 0, 1) == 1;
  c.timeoutSeconds = sqz::timeoutSeconds();  // a malformed SQZ_TIMEOUT fails here, not in the middle of a call
  return c;
}

CompressionPolicy CompressionPolicy::parse(const std::string& spec) {
  CompressionPolicy p;
  try {
    if (spec == "auto") {
      p.automatic = true;
      p.text = "auto";
    } else if (!spec.empty() && spec[0] == '@') {
      p.plan = parsePlanName(spec.substr(1));
      p.text = "@" + planName(p.plan);
    } else {
      p.plan.codec = parseCodecSpec(spec);
      p.text = codecName(p.plan.codec);
    }
  } catch (const Error& e) {
    fail(sqzInvalidArgument, "compression spec '%s': %s", spec.c_str(), e.what());
  }
  return p;
}

Communicator::Communicator(const BootstrapId& id, int nranks, int rank)
    : rank_(rank), size_(nranks), config_(CommConfig::fromEnv()) {
  LogRankScope logRank(rank);
  Deadline deadline = callDeadline();
  // Every SQZ_* setting is checked before this rank joins the others.
  CompressionPolicy envPolicy = CompressionPolicy::parse("none");
  if (const std::string spec = envString("SQZ_COMPRESSION"); !spec.empty()) {
    try {
      envPolicy = CompressionPolicy::parse(spec);
    } catch (const Error& e) {
      fail(sqzInvalidArgument, "SQZ_COMPRESSION=%s: %s", spec.c_str(), e.what());
    }
  }
  if (!envString("SQZ_SEED").empty()) envUnsigned("SQZ_SEED", 0, 0, UINT64_MAX);
  // Whether UCX can use RDMA from this node: the link class between nodes
  // (ib or tcp) that the tuner prices plans with. Without it, the network
  // is TCP, whose rendezvous round trips the eager network worker saves.
  std::string rdmaWhy;
  const bool rdma = ucxUsesRdma(probeNetworkEvidence(), &rdmaWhy);
  transport_ = std::make_unique<UcxTransport>(rank, nranks, !rdma);
  PeerInfo mine;
  mine.ucxAddress = transport_->localAddress();
  mine.nodeId = localNodeId();
  mine.machineId = localMachineId();
  mine.rdma = rdma;
  std::vector<Blob> all = rendezvous(id, rank, nranks, packPeerInfo(mine), deadline);
  std::vector<std::vector<uint8_t>> addresses(nranks);
  nodeIds_.resize(nranks);
  std::vector<RankPlacement> placements(nranks);
  int ranksOnThisMachine = 0;
  for (int r = 0; r < nranks; ++r) {
    PeerInfo peer = unpackPeerInfo(all[r], r);
    ranksOnThisMachine += peer.machineId == mine.machineId;
    addresses[r] = std::move(peer.ucxAddress);
    nodeIds_[r] = peer.nodeId;
    placements[r].nodeId = peer.nodeId;  // host buffers: no GPU in the placement
    placements[r].rdma = peer.rdma;
  }
  std::vector<bool> sameNode(nranks);
  for (int r = 0; r < nranks; ++r) sameNode[r] = nodeIds_[r] == nodeIds_[rank];
  std::vector<std::string> nodes = nodeIds_;
  std::sort(nodes.begin(), nodes.end());
  const bool nodesUnshared = std::adjacent_find(nodes.begin(), nodes.end()) == nodes.end();
  transport_->connect(addresses, sameNode, ranksOnThisMachine, nodesUnshared);
  flat_ = std::make_unique<FlatAllreduces>(*transport_, config_.chunkBytes);
  const LinkClasses links = classifyTopology(placements, nullptr);
  SQZ_INFO("links: inside a node %s, between nodes %s (%s)", linkClassName(links.intra), linkClassName(links.inter),
           rdma ? "RDMA usable here" : rdmaWhy.c_str());
  tuner_ = std::make_unique<AutoTuner>(rank, nodeIds_, links);
  timeline_ = Timeline::fromEnv(rank, nranks);
  multiNode_ = std::any_of(nodeIds_.begin(), nodeIds_.end(), [&](const std::string& id) { return id != nodeIds_[0]; });
  // Node ids include the network namespace: ranks in different namespaces
  // (the testbed's "nodes") keep talking over their links.
  if (!multiNode_ && nranks > 1 && nranks <= kHeaderPayloadMaxRanks) {
    const uint32_t seq = nextSeq();
    nextSeq();
    shm_ = ShmSegment::join(*transport_, seq, config_.sharedMemory, transport_->spinPolls(), deadline);
    flat_->setSegment(shm_.get());
  }
  hierarchy_ = groupByNode(nodeIds_, rank);
  // The codecs' RNG key (stochastic rounding, random-K indices) is the same
  // on every rank: SQZ_SEED when set (reproducible runs), else from the
  // unique id's secret (fresh per communicator).
  seed_ = envString("SQZ_SEED").empty() ? seedFromSecret(id.secret) : envUnsigned("SQZ_SEED", 0, 0, UINT64_MAX);
  policy_ = envPolicy;
  settingsHash_ = settingsHash(config_, tuner_->agreedSettings());
  SQZ_INFO("communicator ready: rank %d of %d, node %s", rank, nranks, nodeIds_[rank].c_str());
}

Communicator::~Communicator() = default;

void Communicator::setCompression(const std::string& spec) { policy_ = CompressionPolicy::parse(spec); }

void Communicator::setOptimizer(const std::string& kind, double momentum) {
  tuner_->setOptimizer(parseOptimizerKind(kind, "optimizer"), momentum);
  settingsHash_ = settingsHash(config_, tuner_->agreedSettings());
}

const AlgorithmEntry& Communicator::chooseAlgorithm(const CodecParams& codec, size_t count, sqzDataType_t type,
                                                    bool withShm) const {
  CallShape call;
  call.codec = codec;
  call.count = count;
  call.bytes = count * dataTypeSize(type);
  call.nranks = size_;
  call.multiNode = multiNode_;
  call.directMaxBytes = config_.directMaxBytes;
  call.sharedMemory = withShm && shm_ != nullptr;
  return defaultAlgorithm(call);
}

const AlgorithmEntry& Communicator::exactDefault(size_t count, sqzDataType_t type, bool withShm) {
  // Without a codec the choice depends only on the call's size and this
  // communicator's fixed settings, and a small call mostly repeats the last
  // call's size: the table's walk costs it more than its reduction.
  ExactChoice& last = lastExactChoice_;
  if (last.entry && last.count == count && last.type == type && last.withShm == withShm) return *last.entry;
  const AlgorithmEntry& chosen = chooseAlgorithm(CodecParams{}, count, type, withShm);
  last = ExactChoice{count, type, withShm, &chosen};
  return chosen;
}

size_t Communicator::reduceStats(GradStats* stats) {
  // As the lagged exchanges go (bfloat16, runs of zeros as their length).
  // As float64 through `direct`, the statistics (then 785 doubles) went as
  // 6.3 KB to each peer, about 15 ms of a 10 Mbit/s link on every buffer's
  // first call.
  SumExchange exchange;
  const double* fields = reinterpret_cast<const double*>(stats);
  exchange.start(*transport_, nextSeq(), tags::kStats, fields, GradStats::kDoubles);
  exchange.finish(callDeadline(), reinterpret_cast<double*>(stats));
  return exchange.largestWireBytes();
}

PlanSpec Communicator::choosePlan(const void* send, size_t count, sqzDataType_t type, ErrorFeedbackState& ef,
                                  const GradStats& local, bool withStats, double* gain) {
  if (!tuner_->ready()) {
    tuner_->prepare(
        *transport_,
        [this](void* buf, size_t n) { Broadcast(*transport_).run(buf, buf, n, 0, nextSeq(), callDeadline()); },
        send, type, count, config_.chunkBytes);
  }
  // Lagged agreement: the statistics last exchanged on this buffer pick
  // this call's plan; the first call reduces its own first (sync), as does
  // SQZ_TUNE_MODE=sync on every call. Between exchanges (TuningState's
  // cadence) the plan chosen from the last ones stands.
  TuningState& t = ef.tuning;
  if (!t.haveReduced || config_.tuneSync) {
    t.reduced = local;
    t.statsWireBytes = reduceStats(&t.reduced);
    ++t.exchanges;
    t.haveReduced = true;
    t.fresh = true;
    t.current = true;  // already this call's: nothing to exchange
  } else {
    t.current = !withStats;
  }
  refreshPlan(count, type, ef);
  *gain = t.planGain;
  return t.plan;
}

void Communicator::refreshPlan(size_t count, sqzDataType_t type, ErrorFeedbackState& ef) {
  TuningState& t = ef.tuning;
  if (!t.fresh && t.havePlan) return;
  char label[64];
  std::snprintf(label, sizeof label, "buffer of %zu x %s", count, dataTypeName(type));
  Plan plan = tuner_->choose(t, t.reduced, static_cast<double>(count), static_cast<int>(dataTypeSize(type)), label,
                             ef.keepsResidual);
  t.plan = plan.chosen.candidate.spec;
  t.planGain = plan.chosen.gain;
  t.havePlan = true;
  t.fresh = false;
}

bool Communicator::knownExactPlan(size_t count, sqzDataType_t type, ErrorFeedbackState& ef) {
  // Lagged agreement: the plan follows from statistics every rank already
  // holds, so it can be chosen before the header round. Not on the first
  // call, in sync mode, or before calibration (which needs the others).
  const TuningState& t = ef.tuning;
  if (!t.haveReduced || config_.tuneSync || !tuner_->ready()) return false;
  refreshPlan(count, type, ef);
  return t.plan.codec.kind == CodecKind::None && t.plan.intraCodec.kind == CodecKind::None && !t.plan.hierarchical;
}

void Communicator::runExact(const AllreduceArgs& a, const AlgorithmEntry& algorithm, ErrorFeedbackState* ef,
                            CallCounters* counters, const CallHeader* header) {
  CompressedArgs c;
  c.base = a;
  c.base.header = header;
  c.counters = counters;
  if (!ef || !ef->residualDirty) return algorithm.run(*flat_, c);
  // Owed mass goes out with this exact call: send g + e, then e = 0.
  std::vector<float> sum;
  takeOwed(a, *ef, &sum);
  c.base.send = c.base.recv = sum.data();
  c.base.type = sqzFloat32;
  algorithm.run(*flat_, c);
  storeFloats(sum.data(), a.type, 0, a.count, a.recv);
}

void Communicator::takeOwed(const AllreduceArgs& a, ErrorFeedbackState& ef, std::vector<float>* sum) {
  sum->resize(a.count);
  loadFloats(a.send, a.type, 0, a.count, sum->data());
  for (size_t i = 0; i < a.count; ++i) (*sum)[i] += ef.residual[i];
  std::fill(ef.residual.begin(), ef.residual.end(), 0.0f);
  std::fill(ef.ownerResidual.begin(), ef.ownerResidual.end(), 0.0f);
  ef.residualDirty = false;
}

CompressedArgs Communicator::compressedArgs(const AllreduceArgs& a, const PlanSpec& plan, ErrorFeedbackState& ef,
                                            CallCounters* counters, std::vector<float>* owed) {
  ef.ensure(EvenSplit{a.count, static_cast<size_t>(size_)}.length(0));
  // Under Adam only codecs whose error is biased keep a residual (src/tuner/README.md section 7).
  const OptimizerKind optimizer = tuner_->optimizer();
  const bool carry = ef.keepsResidual && (carriesErrorFeedback(plan.codec, optimizer) ||
                                          (plan.hierarchical && carriesErrorFeedback(plan.intraCodec, optimizer)));
  CompressedArgs c;
  c.base = a;
  c.codec = plan.codec;
  if (carry) {
    c.residual = ef.residualOrNull();
    c.ownerResidual = ef.ownerResidualOrNull();
    c.ownerResidualCount = ef.ownerResidual.size();
  } else if (ef.residualDirty) {
    takeOwed(a, ef, owed);
    c.base.send = c.base.recv = owed->data();
    c.base.type = sqzFloat32;
  }
  c.seed = seed_;
  c.step = ef.step++;
  c.counters = counters;
  if (carry) ef.residualDirty = true;
  return c;
}

void Communicator::drainDevice() {
  if (!device_) return;
  std::string why;
  sqzResult_t r = device_->asyncError(&why);
  if (r != sqzSuccess) fail(r, "an earlier device allreduce failed: %s", why.c_str());
  device_->drain();
}

void Communicator::allReduceDevice(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                                   void* stream, const char* spec, const void* stateKey) {
  LogRankScope logRank(rank_);
  const uint64_t call = calls_++;
  SQZ_REQUIRE(takeCallTag() == 0, sqzInvalidUsage, "call tags (sqzCommSetCallTag) are for host buffers only");
  const CompressionPolicy policy = spec ? CompressionPolicy::parse(spec) : policy_;
  if (!device_) device_ = std::make_unique<DevicePath>(*this);
  device_->allReduce(send, recv, count, type, op, stream, policy, stateKey, call);
}

void Communicator::adoptNccl(void* ncclComm) {
  SQZ_CHECK(!device_, "adoptNccl after a device call");
  device_ = std::make_unique<DevicePath>(*this);
  device_->adoptNccl(ncclComm);
}

void Communicator::forgetState(const void* key) {
  if (device_) device_->forgetState(key);
}

sqzResult_t Communicator::asyncError(std::string* why) {
  return device_ ? device_->asyncError(why) : sqzSuccess;
}

void Communicator::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                             const char* spec, ErrorFeedbackState* state) {
  LogRankScope logRank(rank_);
  const uint64_t call = calls_++;
  drainDevice();
  TraceRange range("sqz allreduce");
  const CallClock clock;
  AllreduceArgs a;
  a.send = send;
  a.recv = recv;
  a.count = count;
  a.type = type;
  a.op = op;
  a.seq = nextSeq();
  a.deadline = Deadline(clock.start, config_.timeoutSeconds);
  CallDecision d = decideCall(a, spec ? CompressionPolicy::parse(spec) : policy_, state, call);
  agreeOnPlan(a, d);
  const CallCounters counters = runPlan(a, d);
  lastAllReduceEnd_ = monotonicSeconds();
  report(a, d, counters, clock);
}

void Communicator::report(const AllreduceArgs& a, CallDecision& d, const CallCounters& counters,
                          const CallClock& clock) {
  CallReport& r = lastReport_;
  r.count = a.count;
  r.bytes = a.count * dataTypeSize(a.type);
  r.path = d.path;
  r.algorithm = d.algorithm;
  if (d.path == CallDecision::Path::kHier || d.path == CallDecision::Path::kLossy) r.plan = std::move(d.plan);
  r.gain = d.gain;
  r.counters = counters;
  r.tuneSeconds = d.tuneSeconds;
  r.totalSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - clock.start).count();
  lastIsHost_ = true;
  if (timeline_) timeline_->allreduce(callInfo(r), clock.startSeconds, d.tuneSeconds);
}

CallDecision Communicator::decideCall(const AllreduceArgs& a, CompressionPolicy policy, ErrorFeedbackState* state,
                                      uint64_t call) {
  CallDecision d;
  d.policy = std::move(policy);
  const CompressionPolicy& p = d.policy;
  const size_t bytes = a.count * dataTypeSize(a.type);
  // Lossy codecs apply only to float sums and averages worth compressing
  // (for "auto", the SQZ_TUNE table says which sizes are).
  const bool lossyType = a.type == sqzFloat32 || a.type == sqzFloat16 || a.type == sqzBfloat16;
  const bool compressible = lossyType && (a.op == sqzSum || a.op == sqzAvg) && size_ > 1 && a.count > 0;
  auto lossyPlan = [](const PlanSpec& plan) { return plan.codec.kind != CodecKind::None || plan.hierarchical; };
  const bool fixedLossy = !p.automatic && lossyPlan(p.plan) && bytes >= config_.minBytes;
  // A size to which the SQZ_TUNE table gives a fixed plan (by default every
  // buffer up to 64 KiB: @direct, @ring) takes it without auto's
  // statistics, which nothing would read and which cost a small tensor's
  // call more than its payload (perf/results/code_comment_figures.md).
  d.tableForced = compressible && p.automatic && tuner_->forcedPlan(bytes, &d.tablePlan);
  d.tuned = compressible && p.automatic && !d.tableForced;
  d.mayCompress = compressible && (fixedLossy || p.automatic);
  if (d.mayCompress) d.ef = state ? state : &implicit_.forCall(a.count, a.type, call);
  else if (state && compressible) d.ef = state;
  // A plan that names an exact algorithm runs it (sqz.h: forcing a plan's
  // name reproduces the call).
  auto namesExact = [&](const PlanSpec& plan) { return !plan.algorithm.empty() && !lossyPlan(plan); };
  if (!p.automatic && namesExact(p.plan)) d.exactNamed = p.plan.algorithm;
  else if (d.tableForced && namesExact(d.tablePlan)) d.exactNamed = d.tablePlan.algorithm;

  d.header.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  d.header.count = a.count;
  d.header.dtype = a.type;
  d.header.op = a.op;
  d.header.spec = textHash(d.tableForced ? p.text + " @" + planName(d.tablePlan) : p.text);
  d.header.settings = settingsHash_;
  if (d.mayCompress) d.header.rng = rngKey(seed_, d.ef->step);
  d.header.tag = takeCallTag();
  d.header.rankFlags |= kFlagJoinable;
  if (d.tuned) {
    PhaseTimer tune(&d.tuneSeconds, "sqz tune");
    d.local = &tunedStats_;
    *d.local = GradStats{};
    ErrorFeedbackState& ef = *d.ef;
    ef.ensure(EvenSplit{a.count, static_cast<size_t>(size_)}.length(0));
    ef.tuning.maxStatsEvery = config_.tuneSync ? 1 : config_.statsEveryMax;
    d.withStats = ef.tuning.statsDue() || config_.tuneSync;
    // A NaN/Inf only needs finding when the plan may be lossy (an exact
    // plan sums it as IEEE does), and a residual only when it may hold
    // something: auto running exact paid a whole scan of g on every call
    // that a fixed exact spec does not (perf/results/training.md).
    const bool exactPlan = knownExactPlan(a.count, a.type, ef);
    d.exactKnown = exactPlan && !d.withStats;
    // The extra traffic of this call (choosePlan and the lagged exchange in
    // runPlan), agreed like its arguments.
    const bool first = !ef.tuning.haveReduced || config_.tuneSync;
    // What auto's own work costs a call where it runs (measured: a 2-core
    // host with 4 ranks took 3x calibration's price for the statistics),
    // reported with the next exchange; not the first call, which also
    // calibrates and reduces its statistics in its own round.
    d.countTunerSeconds = !first && tuner_->ready();
    d.header.callFlags = (first ? kCallStatsFirst : d.withStats ? kCallStatsLagged : 0) |
                         (tuner_->ready() ? 0 : kCallPreparesTuner);
    if (d.withStats) {
      const EvenSplit split{a.count, static_cast<size_t>(size_)};
      StatsExtras extras;
      extras.ownerResidual = ef.ownerResidualOrNull();
      extras.ownerOffset = split.offset(rank_);
      extras.ownerCount = split.length(rank_);
      extras.sketchSeed = ef.tuning.sketchSeed();
      ef.tuning.statsCall = ef.tuning.calls;
      ef.tuning.statsSeed = extras.sketchSeed;
      extras.otherSeconds = ef.tuning.lastCallEnd > 0 ? monotonicSeconds() - ef.tuning.lastCallEnd : 0.0;
      extras.tunerSeconds = ef.tuning.tunerSeconds;
      extras.idleSeconds = lastAllReduceEnd_ > 0 ? monotonicSeconds() - lastAllReduceEnd_ : 0.0;
      extras.planSeconds = ef.tuning.lastPlanSeconds;
      ef.tuning.tunerSeconds = 0;
      extras.mayBeLossy = !exactPlan;
      extras.residualOwed = ef.residualDirty;
      tunerStats(a.send, a.type, ef.residualOrNull(), a.count, d.local, extras);
      if (d.local->nonFinite > 0) d.header.rankFlags |= kFlagNonFinite;
    } else if (!exactPlan && hasNonFinite(a.send, a.type, a.count)) {
      // As a fixed spec's call: g only. The residual holds what finite g + e
      // left after encoding (a call with NaN/Inf goes exact and clears it),
      // so scanning it too only cost time (perf/results/descent_testbed.md,
      // "No residual scan between exchanges"; code_comment_figures.md).
      d.header.rankFlags |= kFlagNonFinite;
    }
  } else if ((fixedLossy || (d.tableForced && lossyPlan(d.tablePlan))) && hasNonFinite(a.send, a.type, a.count)) {
    d.header.rankFlags |= kFlagNonFinite;
  }
  return d;
}

void Communicator::agreeOnPlan(const AllreduceArgs& a, CallDecision& d) {
  // An exact call's plan follows from what the header agrees on (size,
  // type, policy), so each rank knows it alone; when its algorithm can
  // carry the header in its first message, that message is the agreement
  // (ranks inside sqzJoin send their header alone there, and the call's
  // algorithm reads their payload as zeros: HeaderRound::run).
  // Where shm cannot run (no segment; more bytes than its slot, g + e
  // included) or shm_rs (no segment), the default without it runs instead,
  // alike on every rank.
  const size_t wireElement = d.ef && d.ef->residualDirty ? sizeof(float) : dataTypeSize(a.type);
  auto exactAlgorithm = [&]() -> const AlgorithmEntry& {
    const size_t wireBytes = a.count * (d.peersJoined ? dataTypeSize(a.type) : wireElement);  // runPlan's
    const AlgorithmEntry& chosen = d.exactNamed.empty() || d.peersJoined
                                       ? exactDefault(a.count, a.type, true)
                                       : hostAlgorithm(d.exactNamed);
    if (chosen.id == AlgorithmId::kShm && (!shm_ || !ShmAllreduce::fits(wireBytes)))
      return exactDefault(a.count, a.type, false);
    if (chosen.id == AlgorithmId::kShmRs && !shm_) return exactDefault(a.count, a.type, false);
    return chosen;
  };
  // Auto on an exact plan between exchanges, too: a fixed exact spec's call
  // whose algorithm carries the header (direct up to headerCanCarry's size,
  // shm) makes one round where auto's made two. Every rank knows that plan
  // from the same statistics; with none due, nothing rides on the flags.
  const bool exactAlone = !d.mayCompress || d.exactKnown ||
                          (d.tableForced && d.tablePlan.codec.kind == CodecKind::None && !d.tablePlan.hierarchical);
  if (exactAlone && a.count > 0) {
    if (d.exactKnown) {
      d.ef->tuning.current = true;  // nothing to exchange, as choosePlan says without statistics due
      d.gain = d.ef->tuning.planGain;
    }
    d.path = CallDecision::Path::kExact;
    d.algorithm = &exactAlgorithm();
    // With a segment, only shm carries the header: every first round goes
    // through the segment, and only shm's data does (shm_rs's in one piece;
    // a larger call is agreed first, and then ranks inside sqzJoin run it
    // too, with zeros).
    const bool throughSegment =
        d.algorithm->id == AlgorithmId::kShm ||
        (d.algorithm->id == AlgorithmId::kShmRs && ShmRsAllreduce::fits(a.count * wireElement, size_));
    d.carryHeader = d.algorithm->carriesHeader &&
                    (shm_ ? throughSegment : headerCanCarry(a.count * wireElement, size_));
    if (d.carryHeader) return;
  }
  const uint64_t flags = agreeOnCall(*transport_, a.seq, d.header, a.deadline, shm_.get());
  d.nonFinite = (flags & kFlagNonFinite) != 0;
  d.peersJoined = (flags & kFlagPeersJoined) != 0;
  if (d.nonFinite) SQZ_INFO("allreduce seq=%u: a rank's buffer holds NaN/Inf; sending it exactly", a.seq);
  if (d.mayCompress && !d.goesExact()) {
    PhaseTimer tune(&d.tuneSeconds, "sqz tune");
    d.gain = -1;
    d.plan = d.tableForced  ? d.tablePlan
             : d.tuned      ? choosePlan(a.send, a.count, a.type, *d.ef, *d.local, d.withStats, &d.gain)
                            : d.policy.plan;
  }
  if (d.plan.hierarchical) {
    SQZ_REQUIRE(!hierarchy_.empty(), sqzInvalidUsage, "plan '%s' needs ranks spread evenly over several nodes",
                planName(d.plan).c_str());
    d.path = CallDecision::Path::kHier;
    d.algorithm = &hostAlgorithm(d.plan.algorithm);
  } else if (d.plan.codec.kind != CodecKind::None) {
    d.path = CallDecision::Path::kLossy;
    d.algorithm = d.plan.algorithm.empty() ? &chooseAlgorithm(d.plan.codec, a.count, a.type)
                                           : &hostAlgorithm(d.plan.algorithm);
  } else if (a.count > 0) {
    // Exact: the algorithm the plan names, else the one for this size (auto's
    // exact choice too: its cost shapes price ring and direct alike; and
    // whenever ranks inside sqzJoin take part, which see no plan).
    d.path = CallDecision::Path::kExact;
    d.algorithm = &exactAlgorithm();
  }
}

CallCounters Communicator::runPlan(const AllreduceArgs& a, CallDecision& d) {
  CallCounters counters;
  // The time the plan runs (GradStats::planSeconds): every rank is here
  // once the header round is behind it, so this holds no wait for a late
  // rank, which would look like a credit that did not show.
  const double planStart = monotonicSeconds(), tuneBefore = d.tuneSeconds;
  // Lagged statistics: this call's travel with it and pick the next plan.
  SumExchange stats;
  if (d.tuned && !d.goesExact() && !d.ef->tuning.current) {
    const size_t statsBytes =
        stats.start(*transport_, a.seq, tags::kStats, reinterpret_cast<const double*>(d.local), GradStats::kDoubles);
    counters.wireBytes += static_cast<size_t>(size_ - 1) * statsBytes;
  }
  switch (d.path) {
    case CallDecision::Path::kHier: {
      const uint32_t seqs[3] = {nextSeq(), nextSeq(), nextSeq()};
      std::vector<float> owed;
      CompressedArgs c = compressedArgs(a, d.plan, *d.ef, &counters, &owed);
      HierarchicalAllreduce(*transport_, hierarchy_, config_.chunkBytes).run(c, d.algorithm->run, d.plan.intraCodec, seqs);
      if (!owed.empty()) storeFloats(owed.data(), a.type, 0, a.count, a.recv);
      break;
    }
    case CallDecision::Path::kLossy: {
      SQZ_TRACE("allreduce seq=%u count=%zu %s %s: @%s:%s", a.seq, a.count, dataTypeName(a.type), redOpName(a.op),
                d.algorithm->name, codecName(d.plan.codec).c_str());
      std::vector<float> owed;
      d.algorithm->run(*flat_, compressedArgs(a, d.plan, *d.ef, &counters, &owed));
      if (!owed.empty()) storeFloats(owed.data(), a.type, 0, a.count, a.recv);
      break;
    }
    case CallDecision::Path::kExact:
      // With joined ranks, whose zeros are in the call's type, g + e cannot
      // go as float32: this rank's residual waits for the next call (unless
      // the data went with the header, where they add no data at all).
      runExact(a, *d.algorithm, d.peersJoined ? nullptr : d.ef, &counters, d.carryHeader ? &d.header : nullptr);
      break;
    case CallDecision::Path::kNone: break;
  }
  const bool carriedStats = stats.active();
  if (carriedStats) {
    PhaseTimer wait(&d.tuneSeconds, "sqz tune");
    stats.finish(a.deadline, reinterpret_cast<double*>(&d.ef->tuning.reduced));
    d.ef->tuning.statsWireBytes = stats.largestWireBytes();
    d.ef->tuning.fresh = true;
    ++d.ef->tuning.exchanges;
  }
  if (d.tuned && !d.goesExact()) d.ef->tuning.countCall(d.withStats);
  if (d.tuned) {
    d.ef->tuning.lastCallEnd = monotonicSeconds();
    // Unknown where the header rode the first message (a late rank's wait
    // is in it), where the call went exact against its plan, and where the
    // statistics went with it: their bytes share the link, and the plan's
    // price leaves them out (at 10 Mbit/s the logistic regression's call
    // took 1.6 ms alone and 3.5-4.6 ms with them, which read as no credit).
    d.ef->tuning.lastPlanSeconds =
        d.carryHeader || d.goesExact() || carriedStats
            ? 0.0
            : std::max(0.0, d.ef->tuning.lastCallEnd - planStart - (d.tuneSeconds - tuneBefore));
  }
  if (d.countTunerSeconds) d.ef->tuning.tunerSeconds += d.tuneSeconds;
  return counters;
}

sqzCallInfo Communicator::callInfo(const CallReport& r) const {
  using Path = CallDecision::Path;
  sqzCallInfo info{};
  info.count = r.count;
  info.bytes = r.bytes;
  info.gain = r.gain;
  const bool coded = r.path == Path::kHier || r.path == Path::kLossy;
  const std::string codec = coded ? codecName(r.plan.codec) : "none";
  const std::string algorithm = r.path == Path::kHier ? "hier" : r.algorithm ? r.algorithm->name : "none";
  const std::string plan = r.path == Path::kHier    ? planName(r.plan)
                           : r.path == Path::kLossy ? algorithm + ":" + codec
                                                    : algorithm;
  std::snprintf(info.algorithm, sizeof info.algorithm, "%s", algorithm.c_str());
  std::snprintf(info.codec, sizeof info.codec, "%s", codec.c_str());
  std::snprintf(info.plan, sizeof info.plan, "@%s", plan.c_str());
  info.exact = r.path == Path::kHier
                   ? r.plan.codec.kind == CodecKind::None && r.plan.intraCodec.kind == CodecKind::None
                   : r.path != Path::kLossy;
  info.wireBytes = r.counters.wireBytes;
  const double dense = RingAllreduce::bytesSentPerRank(static_cast<double>(info.bytes), size_);
  info.compressionRatio = r.counters.wireBytes > 0 ? dense / static_cast<double>(r.counters.wireBytes) : 1.0;
  info.encodeSeconds = r.counters.encodeSeconds;
  info.decodeSeconds = r.counters.decodeSeconds;
  info.totalSeconds = r.totalSeconds;
  info.transferSeconds = std::max(0.0, info.totalSeconds - info.encodeSeconds - info.decodeSeconds - r.tuneSeconds);
  return info;
}

uint32_t Communicator::agreeOnExactCall(CollectiveKind kind, size_t count, int type, int root,
                                        const Deadline& deadline) {
  const uint32_t seq = nextSeq();
  CallHeader h;
  h.kind = static_cast<uint32_t>(kind);
  h.count = count;
  h.dtype = type;
  h.root = root;
  h.tag = takeCallTag();
  agreeOnCall(*transport_, seq, h, deadline, shm_.get());
  return seq;
}

void Communicator::broadcast(const void* send, void* recv, size_t count, sqzDataType_t type, int root) {
  LogRankScope logRank(rank_);
  drainDevice();
  const Deadline deadline = callDeadline();
  const uint32_t seq = agreeOnExactCall(CollectiveKind::kBroadcast, count, type, root, deadline);
  if (count == 0) return;
  Broadcast(*transport_).run(send, recv, count * dataTypeSize(type), root, seq, deadline);
}

void Communicator::allGather(const void* send, void* recv, size_t count, sqzDataType_t type) {
  LogRankScope logRank(rank_);
  drainDevice();
  const Deadline deadline = callDeadline();
  const uint32_t seq = agreeOnExactCall(CollectiveKind::kAllGather, count, type, -1, deadline);
  if (count == 0) return;
  AllGather(*transport_).run(send, recv, count * dataTypeSize(type), seq, deadline);
}

void Communicator::barrier() {
  LogRankScope logRank(rank_);
  drainDevice();
  agreeOnExactCall(CollectiveKind::kBarrier, 0, -1, -1, callDeadline());
}

void Communicator::abort() {
  if (device_) device_->abort();
  if (shm_) shm_->markFailed();
  transport_->abort();
}

}  // namespace sqz
