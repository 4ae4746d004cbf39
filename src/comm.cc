#include "src/comm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "collectives/allgather.h"
#include "collectives/broadcast.h"
#include "collectives/call_agreement.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/log.h"
#include "collectives/codec_buffers.h"
#include "collectives/sum_exchange.h"
#include "collectives/tag_slots.h"
#include "kernels/cpu_codec.h"
#include "src/bootstrap/rendezvous.h"
#include "src/codec/codec_spec.h"
#include "src/topology/link_topology.h"
#include "src/topology/node_id.h"
#include "src/tuner/algorithm_table.h"

namespace sqz {
namespace {

// The blob each rank contributes to the rendezvous.
Blob packPeerInfo(const std::vector<uint8_t>& ucxAddress, const std::string& nodeId, bool rdma) {
  Blob b;
  auto put = [&b](const void* p, uint32_t n) {
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  put(ucxAddress.data(), static_cast<uint32_t>(ucxAddress.size()));
  put(nodeId.data(), static_cast<uint32_t>(nodeId.size()));
  const uint8_t r = rdma ? 1 : 0;
  put(&r, 1);
  return b;
}

void unpackPeerInfo(const Blob& b, int rank, std::vector<uint8_t>* ucxAddress, std::string* nodeId, bool* rdma) {
  size_t pos = 0;
  auto get = [&](std::vector<uint8_t>* out) {
    uint32_t n = 0;
    SQZ_REQUIRE(pos + 4 <= b.size(), sqzRemoteError, "malformed bootstrap record from rank %d", rank);
    std::memcpy(&n, b.data() + pos, 4);
    pos += 4;
    SQZ_REQUIRE(pos + n <= b.size(), sqzRemoteError, "malformed bootstrap record from rank %d", rank);
    out->assign(b.begin() + pos, b.begin() + pos + n);
    pos += n;
  };
  std::vector<uint8_t> node;
  get(ucxAddress);
  get(&node);
  nodeId->assign(node.begin(), node.end());
  std::vector<uint8_t> r;
  get(&r);
  SQZ_REQUIRE(r.size() == 1, sqzRemoteError, "malformed bootstrap record from rank %d", rank);
  *rdma = r[0] != 0;
}

uint32_t specHash(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace

CommConfig CommConfig::fromEnv() {
  CommConfig c;
  c.chunkBytes = static_cast<size_t>(envInt("SQZ_CHUNK_BYTES", 512 << 10));
  c.directMaxBytes = static_cast<size_t>(envInt("SQZ_DIRECT_MAX_BYTES", 32 << 10));
  c.minBytes = static_cast<size_t>(envInt("SQZ_MIN_BYTES", 64 << 10));
  c.statsEveryMax = static_cast<uint32_t>(std::max<int64_t>(1, envInt("SQZ_STATS_EVERY_MAX", 16)));
  c.tuneSync = envString("SQZ_TUNE_MODE", "lagged") == "sync";
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
      SQZ_REQUIRE(!p.plan.hierarchical || p.plan.intraCodec.kind == CodecKind::None, sqzInvalidArgument,
                  "hierarchical plans run their intra-node stages exactly in this build ('%s')", spec.c_str());
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
  Deadline deadline = Deadline::fromTimeout();
  transport_ = std::make_unique<UcxTransport>(rank, nranks);
  // Whether UCX can use RDMA from this node: the link class between nodes
  // (ib or tcp) that the tuner prices plans with.
  std::string rdmaWhy;
  const bool rdma = ucxUsesRdma(probeNetworkEvidence(), &rdmaWhy);
  std::vector<Blob> all =
      rendezvous(id, rank, nranks, packPeerInfo(transport_->localAddress(), localNodeId(), rdma), deadline);
  std::vector<std::vector<uint8_t>> addresses(nranks);
  nodeIds_.resize(nranks);
  std::vector<RankPlacement> placements(nranks);
  for (int r = 0; r < nranks; ++r) {
    unpackPeerInfo(all[r], r, &addresses[r], &nodeIds_[r], &placements[r].rdma);
    placements[r].nodeId = nodeIds_[r];  // host buffers: no GPU in the placement
  }
  std::vector<bool> sameNode(nranks);
  for (int r = 0; r < nranks; ++r) sameNode[r] = nodeIds_[r] == nodeIds_[rank];
  transport_->connect(addresses, sameNode);
  flat_ = std::make_unique<FlatAllreduces>(*transport_, config_.chunkBytes);
  policy_ = CompressionPolicy::parse("none");
  const LinkClasses links = classifyTopology(placements, nullptr);
  SQZ_INFO("links: inside a node %s, between nodes %s (%s)", linkClassName(links.intra), linkClassName(links.inter),
           rdma ? "RDMA usable here" : rdmaWhy.c_str());
  tuner_ = std::make_unique<AutoTuner>(rank, nodeIds_, links);
  timeline_ = Timeline::fromEnv(rank, nranks);
  multiNode_ = std::any_of(nodeIds_.begin(), nodeIds_.end(), [&](const std::string& id) { return id != nodeIds_[0]; });
  hierarchy_ = groupByNode(nodeIds_, rank);
  // The codecs' RNG key (stochastic rounding, random-K indices) is the same
  // on every rank: SQZ_SEED when set (reproducible runs), else from the
  // unique id's secret (fresh per communicator).
  std::memcpy(&seed_, id.secret.data(), sizeof seed_);
  if (!envString("SQZ_SEED").empty()) seed_ = static_cast<uint64_t>(envInt("SQZ_SEED", 0));
  std::string spec = envString("SQZ_COMPRESSION");
  if (!spec.empty()) {
    try {
      setCompression(spec);
    } catch (const Error& e) {
      SQZ_WARN("ignoring SQZ_COMPRESSION: %s", e.what());
    }
  }
  SQZ_INFO("communicator ready: rank %d of %d, node %s", rank, nranks, nodeIds_[rank].c_str());
}

Communicator::~Communicator() = default;

void Communicator::setCompression(const std::string& spec) { policy_ = CompressionPolicy::parse(spec); }

ErrorFeedbackState& Communicator::keyedState(void* recv, size_t count, sqzDataType_t type) {
  auto& slot = keyedStates_[{recv, count}];
  if (!slot || slot->type != type) slot = std::make_unique<ErrorFeedbackState>(count, type);
  return *slot;
}

const AlgorithmEntry& Communicator::chooseAlgorithm(const CodecParams& codec, size_t count, sqzDataType_t type) const {
  CallShape call;
  call.codec = codec;
  call.count = count;
  call.bytes = count * dataTypeSize(type);
  call.nranks = size_;
  call.multiNode = multiNode_;
  call.directMaxBytes = config_.directMaxBytes;
  return defaultAlgorithm(call);
}

void Communicator::reduceStats(GradStats* stats) {
  AllreduceArgs a;
  a.send = a.recv = stats;
  a.count = GradStats::kDoubles;
  a.type = sqzFloat64;
  a.op = sqzSum;
  a.seq = nextSeq();
  a.deadline = Deadline::fromTimeout();
  flat_->direct().run(a);
}

PlanSpec Communicator::choosePlan(const void* send, size_t count, sqzDataType_t type, ErrorFeedbackState& ef,
                                  const GradStats& local, bool withStats, double* gain) {
  if (!tuner_->ready()) {
    tuner_->prepare(
        *transport_,
        [this](void* buf, size_t n) { Broadcast(*transport_).run(buf, buf, n, 0, nextSeq(), Deadline::fromTimeout()); },
        send, type, count, config_.chunkBytes);
  }
  // Lagged agreement: the statistics last exchanged on this buffer pick
  // this call's plan; the first call reduces its own first (sync), as does
  // SQZ_TUNE_MODE=sync on every call. Between exchanges (TuningState's
  // cadence) the plan chosen from the last ones stands.
  TuningState& t = ef.tuning;
  if (!t.haveReduced || config_.tuneSync) {
    t.reduced = local;
    reduceStats(&t.reduced);
    t.haveReduced = true;
    t.fresh = true;
    t.current = true;  // already this call's: nothing to exchange
  } else {
    t.current = !withStats;
  }
  if (t.fresh || !t.havePlan) {
    char label[64];
    std::snprintf(label, sizeof label, "buffer of %zu x %s", count, dataTypeName(type));
    Plan plan = tuner_->choose(t, t.reduced, static_cast<double>(count), static_cast<int>(dataTypeSize(type)), label);
    t.plan = plan.chosen.candidate.spec;
    t.planGain = plan.chosen.gain;
    t.havePlan = true;
    t.fresh = false;
  }
  *gain = t.planGain;
  return t.plan;
}

void Communicator::runExact(const AllreduceArgs& a, ErrorFeedbackState* ef, CallCounters* counters,
                            std::string* algorithm) {
  const AlgorithmEntry& exact = chooseAlgorithm(CodecParams{}, a.count, a.type);
  *algorithm = exact.name;
  CompressedArgs c;
  c.counters = counters;
  if (ef && ef->residualDirty) {
    // Owed mass goes out with this exact call: send g + e, then e = 0.
    std::vector<float> sum(a.count);
    loadFloats(a.send, a.type, 0, a.count, sum.data());
    for (size_t i = 0; i < a.count; ++i) sum[i] += ef->residual[i];
    std::fill(ef->residual.begin(), ef->residual.end(), 0.0f);
    std::fill(ef->ownerResidual.begin(), ef->ownerResidual.end(), 0.0f);
    ef->residualDirty = false;
    c.base = a;
    c.base.send = c.base.recv = sum.data();
    c.base.type = sqzFloat32;
    exact.run(*flat_, c);
    storeFloats(sum.data(), a.type, 0, a.count, a.recv);
    return;
  }
  c.base = a;
  exact.run(*flat_, c);
}

CompressedArgs Communicator::compressedArgs(const AllreduceArgs& a, const CodecParams& codec, ErrorFeedbackState& ef,
                                            CallCounters* counters) {
  ef.ensure(EvenSplit{a.count, static_cast<size_t>(size_)}.length(0));
  CompressedArgs c;
  c.base = a;
  c.codec = codec;
  c.residual = ef.residual.data();
  c.ownerResidual = ef.ownerResidual.data();
  c.ownerResidualCount = ef.ownerResidual.size();
  c.seed = seed_;
  c.step = ef.step++;
  c.counters = counters;
  if (codec.kind != CodecKind::None) ef.residualDirty = true;
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
  const CompressionPolicy policy = spec ? CompressionPolicy::parse(spec) : policy_;
  if (!device_) device_ = std::make_unique<DevicePath>(*this);
  device_->allReduce(send, recv, count, type, op, stream, policy, stateKey);
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
  drainDevice();
  TraceRange range("sqz allreduce");
  const auto start = std::chrono::steady_clock::now();
  const double startSeconds = monotonicSeconds();
  double tuneSeconds = 0;
  const CompressionPolicy policy = spec ? CompressionPolicy::parse(spec) : policy_;
  AllreduceArgs a;
  a.send = send;
  a.recv = recv;
  a.count = count;
  a.type = type;
  a.op = op;
  a.seq = nextSeq();
  a.deadline = Deadline::fromTimeout();
  const size_t bytes = count * dataTypeSize(type);
  // Lossy codecs apply only to float sums and averages worth compressing
  // (for "auto", the SQZ_TUNE table says which sizes are).
  const bool lossyType = type == sqzFloat32 || type == sqzFloat16 || type == sqzBfloat16;
  const bool compressible = lossyType && (op == sqzSum || op == sqzAvg) && size_ > 1 && count > 0;
  const bool fixedLossy = !policy.automatic &&
                          (policy.plan.codec.kind != CodecKind::None || policy.plan.hierarchical) &&
                          bytes >= config_.minBytes;
  const bool tuned = policy.automatic;
  ErrorFeedbackState* ef = nullptr;
  if (compressible && (fixedLossy || tuned)) ef = state ? state : &keyedState(recv, count, type);
  else if (state && compressible) ef = state;

  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  h.count = count;
  h.dtype = type;
  h.op = op;
  h.spec = specHash(policy.text);
  // A size to which the SQZ_TUNE table gives a fixed plan (by default every
  // buffer up to 64 KiB: @direct, @ring) takes it without auto's statistics,
  // which nothing would read (they had cost a small tensor's call more than
  // its payload on a slow link: 12 KB to the peers for a 40-byte bias).
  PlanSpec forcedPlan;
  const bool forced = compressible && tuned && tuner_->forcedPlan(bytes, &forcedPlan);
  const bool forcedLossy = forced && (forcedPlan.codec.kind != CodecKind::None || forcedPlan.hierarchical);
  GradStats local{};
  bool withStats = false;  // this call reads and exchanges auto's statistics
  if (compressible && tuned && !forced) {
    PhaseTimer tune(&tuneSeconds, "sqz tune");
    ef->ensure(EvenSplit{count, static_cast<size_t>(size_)}.length(0));
    ef->tuning.maxStatsEvery = config_.tuneSync ? 1 : config_.statsEveryMax;
    withStats = ef->tuning.statsDue() || config_.tuneSync;
    if (withStats) {
      tunerStats(send, type, ef->residual.data(), count, &local);
      if (local.nonFinite > 0) h.rankFlags |= kFlagNonFinite;
    } else if (hasNonFinite(send, type, count)) {
      // As a fixed spec's call: g only. The residual holds what finite g + e
      // left after encoding (a call with NaN/Inf goes exact and clears it),
      // so scanning it too cost auto 1 ms a call on 1.86M elements with
      // nothing to find (measured at 100 Mbit/s: 13 ms calls against 11.5).
      h.rankFlags |= kFlagNonFinite;
    }
  } else if (compressible && (fixedLossy || forcedLossy) && hasNonFinite(send, type, count)) {
    h.rankFlags |= kFlagNonFinite;
  }
  const uint64_t flags = agreeOnCall(*transport_, a.seq, h, a.deadline);

  sqzCallInfo info{};
  info.count = count;
  info.bytes = bytes;
  info.gain = 1.0;
  CallCounters counters;
  std::string algorithm = count > 0 ? "ring" : "none";
  PlanSpec plan;
  if (compressible && (fixedLossy || tuned) && !(flags & kFlagNonFinite)) {
    double gain = -1;
    {
      PhaseTimer tune(&tuneSeconds, "sqz tune");
      plan = forced  ? forcedPlan
             : tuned ? choosePlan(send, count, type, *ef, local, withStats, &gain)
                     : policy.plan;
    }
    if (plan.algorithm.empty()) plan.algorithm = chooseAlgorithm(plan.codec, count, type).name;
    info.gain = gain;
  } else if (flags & kFlagNonFinite) {
    SQZ_INFO("allreduce seq=%u: a rank's buffer holds NaN/Inf; sending it exactly", a.seq);
  }
  const bool hierarchical = plan.hierarchical;
  SQZ_REQUIRE(!hierarchical || !hierarchy_.node.empty(), sqzInvalidUsage,
              "plan '%s' needs ranks spread evenly over several nodes", planName(plan).c_str());
  const bool lossy = !hierarchical && !plan.algorithm.empty() && plan.codec.kind != CodecKind::None;
  // Lagged statistics: this call's travel with it and pick the next plan.
  SumExchange statsExchange;
  if (compressible && tuned && !forced && !(flags & kFlagNonFinite) && !ef->tuning.current) {
    statsExchange.start(*transport_, a.seq, tags::kStats, reinterpret_cast<const double*>(&local), GradStats::kDoubles);
    counters.wireBytes += static_cast<size_t>(size_ - 1) * sizeof(GradStats);
  }
  if (hierarchical) {
    algorithm = "hier";
    CompressedArgs c = compressedArgs(a, plan.codec, *ef, &counters);
    const FlatRun inter = hostAlgorithm(plan.algorithm).run;
    const uint32_t seqs[3] = {nextSeq(), nextSeq(), nextSeq()};
    HierarchicalAllreduce(*transport_, hierarchy_, config_.chunkBytes).run(c, inter, seqs);
    std::snprintf(info.codec, sizeof info.codec, "%s", codecName(plan.codec).c_str());
    info.exact = plan.codec.kind == CodecKind::None;
  } else if (lossy) {
    algorithm = plan.algorithm;
    CompressedArgs c = compressedArgs(a, plan.codec, *ef, &counters);
    SQZ_TRACE("allreduce seq=%u count=%zu %s %s: @%s", a.seq, count, dataTypeName(type), redOpName(op),
              planName(plan).c_str());
    hostAlgorithm(algorithm).run(*flat_, c);
    std::snprintf(info.codec, sizeof info.codec, "%s", codecName(plan.codec).c_str());
  } else {
    info.exact = 1;
    std::snprintf(info.codec, sizeof info.codec, "none");
    if (count > 0) runExact(a, ef, &counters, &algorithm);
  }
  if (statsExchange.active()) {
    statsExchange.finish(a.deadline, reinterpret_cast<double*>(&ef->tuning.reduced));
    ef->tuning.fresh = true;
  }
  if (compressible && tuned && !forced && !(flags & kFlagNonFinite)) ef->tuning.countCall(withStats);
  std::snprintf(info.algorithm, sizeof info.algorithm, "%s", algorithm.c_str());
  if (hierarchical) std::snprintf(info.plan, sizeof info.plan, "@%s", planName(plan).c_str());
  else
    std::snprintf(info.plan, sizeof info.plan, "@%s%s%s", algorithm.c_str(), lossy ? ":" : "", lossy ? info.codec : "");
  info.wireBytes = counters.wireBytes;
  const double dense = RingAllreduce::bytesSentPerRank(static_cast<double>(bytes), size_);
  info.compressionRatio = counters.wireBytes > 0 ? dense / static_cast<double>(counters.wireBytes) : 1.0;
  info.encodeSeconds = counters.encodeSeconds;
  info.decodeSeconds = counters.decodeSeconds;
  info.totalSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  info.transferSeconds =
      std::max(0.0, info.totalSeconds - info.encodeSeconds - info.decodeSeconds - tuneSeconds);
  lastCall_ = info;
  if (timeline_) {
    char args[512];
    std::snprintf(args, sizeof args,
                  "{\"plan\":\"%s\",\"count\":%zu,\"bytes\":%zu,\"wire_bytes\":%zu,\"ratio\":%.3f,"
                  "\"gain\":%.4f,\"tune_ms\":%.3f,\"encode_ms\":%.3f,\"transfer_ms\":%.3f,\"decode_ms\":%.3f}",
                  info.plan, count, bytes, info.wireBytes, info.compressionRatio, info.gain, tuneSeconds * 1e3,
                  info.encodeSeconds * 1e3, info.transferSeconds * 1e3, info.decodeSeconds * 1e3);
    timeline_->complete("allreduce", "sqz", 0, startSeconds, info.totalSeconds, args);
    if (tuneSeconds > 0) timeline_->complete("tune", "sqz", 1, startSeconds, tuneSeconds, "");
  }
}

uint32_t Communicator::agreeOnExactCall(CollectiveKind kind, size_t count, int type, int root,
                                        const Deadline& deadline) {
  const uint32_t seq = nextSeq();
  CallHeader h;
  h.kind = static_cast<uint32_t>(kind);
  h.count = count;
  h.dtype = type;
  h.root = root;
  agreeOnCall(*transport_, seq, h, deadline);
  return seq;
}

void Communicator::broadcast(const void* send, void* recv, size_t count, sqzDataType_t type, int root) {
  LogRankScope logRank(rank_);
  drainDevice();
  const Deadline deadline = Deadline::fromTimeout();
  const uint32_t seq = agreeOnExactCall(CollectiveKind::kBroadcast, count, type, root, deadline);
  if (count == 0) return;
  Broadcast(*transport_).run(send, recv, count * dataTypeSize(type), root, seq, deadline);
}

void Communicator::allGather(const void* send, void* recv, size_t count, sqzDataType_t type) {
  LogRankScope logRank(rank_);
  drainDevice();
  const Deadline deadline = Deadline::fromTimeout();
  const uint32_t seq = agreeOnExactCall(CollectiveKind::kAllGather, count, type, -1, deadline);
  if (count == 0) return;
  AllGather(*transport_).run(send, recv, count * dataTypeSize(type), seq, deadline);
}

void Communicator::barrier() {
  LogRankScope logRank(rank_);
  drainDevice();
  agreeOnExactCall(CollectiveKind::kBarrier, 0, -1, -1, Deadline::fromTimeout());
}

void Communicator::abort() {
  if (device_) device_->abort();
  transport_->abort();
}

}  // namespace sqz
