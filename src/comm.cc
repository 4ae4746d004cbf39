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
#include "src/bootstrap/rendezvous.h"
#include "src/codec/codec_spec.h"
#include "src/topology/node_id.h"

namespace sqz {
namespace {

// The blob each rank contributes to the rendezvous.
Blob packPeerInfo(const std::vector<uint8_t>& ucxAddress, const std::string& nodeId) {
  Blob b;
  auto put = [&b](const void* p, uint32_t n) {
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  put(ucxAddress.data(), static_cast<uint32_t>(ucxAddress.size()));
  put(nodeId.data(), static_cast<uint32_t>(nodeId.size()));
  return b;
}

void unpackPeerInfo(const Blob& b, int rank, std::vector<uint8_t>* ucxAddress, std::string* nodeId) {
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
  return c;
}

namespace {

// The registry of compressed algorithms: the names used in plan names,
// SQZ_DEBUG output and sqzGetCallInfo.
const char* const kAlgorithms[] = {"ring", "direct", "qa2a", "qring", "sparse_ag", "sparse_split", "randk"};

bool algorithmFits(const std::string& algo, CodecKind kind) {
  switch (kind) {
    case CodecKind::None: return algo == "ring" || algo == "direct";
    case CodecKind::Bf16:
    case CodecKind::Fp16:
    case CodecKind::Quant: return algo == "qa2a" || algo == "qring";
    case CodecKind::TopK: return algo == "sparse_ag" || algo == "sparse_split";
    case CodecKind::RandK: return algo == "randk";
  }
  return false;
}

}  // namespace

CompressionPolicy CompressionPolicy::parse(const std::string& spec) {
  CompressionPolicy p;
  std::string codecText = spec;
  if (!spec.empty() && spec[0] == '@') {
    size_t colon = spec.find(':');
    p.algorithm = spec.substr(1, colon == std::string::npos ? std::string::npos : colon - 1);
    codecText = colon == std::string::npos ? "" : spec.substr(colon + 1);
    bool known = false;
    for (const char* a : kAlgorithms) known = known || p.algorithm == a;
    SQZ_REQUIRE(known, sqzInvalidArgument, "unknown algorithm '%s' in '%s'", p.algorithm.c_str(), spec.c_str());
  }
  if (codecText == "auto")
    fail(sqzInvalidArgument, "compression 'auto' needs the autotuner, which this build does not have yet");
  try {
    p.codec = parseCodecSpec(codecText);
  } catch (const Error& e) {
    fail(sqzInvalidArgument, "compression spec '%s': %s", spec.c_str(), e.what());
  }
  if (!p.algorithm.empty())
    SQZ_REQUIRE(algorithmFits(p.algorithm, p.codec.kind), sqzInvalidArgument,
                "algorithm '%s' cannot run codec '%s'", p.algorithm.c_str(), codecText.c_str());
  p.text = (p.algorithm.empty() ? "" : "@" + p.algorithm + ":") + codecName(p.codec);
  return p;
}

Communicator::Communicator(const BootstrapId& id, int nranks, int rank)
    : rank_(rank), size_(nranks), config_(CommConfig::fromEnv()) {
  LogRankScope logRank(rank);
  Deadline deadline = Deadline::fromTimeout();
  transport_ = std::make_unique<UcxTransport>(rank, nranks);
  std::vector<Blob> all =
      rendezvous(id, rank, nranks, packPeerInfo(transport_->localAddress(), localNodeId()), deadline);
  std::vector<std::vector<uint8_t>> addresses(nranks);
  nodeIds_.resize(nranks);
  for (int r = 0; r < nranks; ++r) unpackPeerInfo(all[r], r, &addresses[r], &nodeIds_[r]);
  std::vector<bool> sameNode(nranks);
  for (int r = 0; r < nranks; ++r) sameNode[r] = nodeIds_[r] == nodeIds_[rank];
  transport_->connect(addresses, sameNode);
  ring_ = std::make_unique<RingAllreduce>(*transport_, config_.chunkBytes);
  direct_ = std::make_unique<DirectAllreduce>(*transport_);
  quantized_ = std::make_unique<QuantizedAllreduce>(*transport_);
  codecRing_ = std::make_unique<CodecRingAllreduce>(*transport_);
  sparse_ = std::make_unique<SparseAllreduce>(*transport_, *ring_);
  randk_ = std::make_unique<RandkAllreduce>(*ring_, nranks);
  policy_ = CompressionPolicy::parse("none");
  std::memcpy(&seed_, id.secret.data(), sizeof seed_);  // the same on every rank
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

std::string Communicator::chooseAlgorithm(const CompressionPolicy& policy, size_t count) const {
  if (!policy.algorithm.empty()) return policy.algorithm;
  switch (policy.codec.kind) {
    case CodecKind::Quant:
      // All-to-all: 2 rounds of N-1 concurrent messages; the ring's 2(N-1)
      // sequential steps win only when N is large.
      return size_ <= 16 ? "qa2a" : "qring";
    case CodecKind::Bf16:
    case CodecKind::Fp16: return "qring";
    case CodecKind::TopK:
      return SparseAllreduce::bytesSentPerRank(policy.codec, count, size_, SparseAllreduce::Shape::kSplit) <
                     SparseAllreduce::bytesSentPerRank(policy.codec, count, size_, SparseAllreduce::Shape::kAllgather)
                 ? "sparse_split"
                 : "sparse_ag";
    case CodecKind::RandK: return "randk";
    case CodecKind::None: break;
  }
  return "ring";
}

void Communicator::runCompressed(const std::string& algorithm, const CompressedArgs& args) {
  if (algorithm == "qa2a") quantized_->run(args);
  else if (algorithm == "qring") codecRing_->run(args);
  else if (algorithm == "sparse_ag") sparse_->run(args, SparseAllreduce::Shape::kAllgather);
  else if (algorithm == "sparse_split") sparse_->run(args, SparseAllreduce::Shape::kSplit);
  else if (algorithm == "randk") randk_->run(args);
  else fail(sqzInternalError, "no compressed algorithm '%s'", algorithm.c_str());
}

void Communicator::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                             const char* spec, ErrorFeedbackState* state) {
  LogRankScope logRank(rank_);
  const auto start = std::chrono::steady_clock::now();
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
  // Lossy codecs apply only to float sums and averages worth compressing.
  const bool lossyType = type == sqzFloat32 || type == sqzFloat16 || type == sqzBfloat16;
  const bool lossy = policy.codec.kind != CodecKind::None && lossyType && (op == sqzSum || op == sqzAvg) &&
                     bytes >= config_.minBytes && size_ > 1;
  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  h.count = count;
  h.dtype = type;
  h.op = op;
  h.spec = specHash(policy.text);
  if (lossy && hasNonFinite(send, type, count)) h.rankFlags |= kFlagNonFinite;
  const uint64_t flags = agreeOnCall(*transport_, a.seq, h, a.deadline);

  sqzCallInfo info{};
  info.count = count;
  info.bytes = bytes;
  info.gain = 1.0;
  CallCounters counters;
  std::string algorithm;
  if (lossy && !(flags & kFlagNonFinite)) {
    algorithm = chooseAlgorithm(policy, count);
    ErrorFeedbackState& ef = state ? *state : keyedState(recv, count, type);
    ef.ensure(EvenSplit{count, static_cast<size_t>(size_)}.length(0));
    CompressedArgs c;
    c.base = a;
    c.codec = policy.codec;
    c.residual = ef.residual.data();
    c.ownerResidual = ef.ownerResidual.data();
    c.ownerResidualCount = ef.ownerResidual.size();
    c.seed = seed_;
    c.step = ef.step++;
    c.counters = &counters;
    SQZ_TRACE("allreduce seq=%u count=%zu %s %s: @%s:%s", a.seq, count, dataTypeName(type), redOpName(op),
              algorithm.c_str(), codecName(policy.codec).c_str());
    runCompressed(algorithm, c);
    std::snprintf(info.codec, sizeof info.codec, "%s", codecName(policy.codec).c_str());
    info.gain = -1;  // not estimated without the tuner's statistics
  } else {
    if (lossy) SQZ_INFO("allreduce seq=%u: a rank's buffer holds NaN/Inf; sending it exactly", a.seq);
    info.exact = 1;
    std::snprintf(info.codec, sizeof info.codec, "none");
    if (count > 0) {
      const bool direct = size_ > 1 && bytes <= config_.directMaxBytes;
      algorithm = direct ? "direct" : "ring";
      SQZ_TRACE("allreduce seq=%u count=%zu %s %s: %s", a.seq, count, dataTypeName(type), redOpName(op),
                algorithm.c_str());
      if (direct) direct_->run(a);
      else ring_->run(a);
      counters.wireBytes = static_cast<size_t>(direct ? DirectAllreduce::bytesSentPerRank(bytes, size_)
                                                      : RingAllreduce::bytesSentPerRank(bytes, size_));
    } else {
      algorithm = "none";
    }
  }
  std::snprintf(info.algorithm, sizeof info.algorithm, "%s", algorithm.c_str());
  std::snprintf(info.plan, sizeof info.plan, "@%s:%s", algorithm.c_str(), info.codec);
  info.wireBytes = counters.wireBytes;
  const double dense = RingAllreduce::bytesSentPerRank(static_cast<double>(bytes), size_);
  info.compressionRatio = counters.wireBytes > 0 ? dense / static_cast<double>(counters.wireBytes) : 1.0;
  info.encodeSeconds = counters.encodeSeconds;
  info.decodeSeconds = counters.decodeSeconds;
  info.totalSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  info.transferSeconds = std::max(0.0, info.totalSeconds - info.encodeSeconds - info.decodeSeconds);
  lastCall_ = info;
}

void Communicator::broadcast(const void* send, void* recv, size_t count, sqzDataType_t type, int root) {
  LogRankScope logRank(rank_);
  uint32_t seq = nextSeq();
  Deadline deadline = Deadline::fromTimeout();
  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kBroadcast);
  h.count = count;
  h.dtype = type;
  h.root = root;
  agreeOnCall(*transport_, seq, h, deadline);
  if (count == 0) return;
  Broadcast(*transport_).run(send, recv, count * dataTypeSize(type), root, seq, deadline);
}

void Communicator::allGather(const void* send, void* recv, size_t count, sqzDataType_t type) {
  LogRankScope logRank(rank_);
  uint32_t seq = nextSeq();
  Deadline deadline = Deadline::fromTimeout();
  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kAllGather);
  h.count = count;
  h.dtype = type;
  agreeOnCall(*transport_, seq, h, deadline);
  if (count == 0) return;
  AllGather(*transport_).run(send, recv, count * dataTypeSize(type), seq, deadline);
}

void Communicator::barrier() {
  LogRankScope logRank(rank_);
  uint32_t seq = nextSeq();
  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kBarrier);
  agreeOnCall(*transport_, seq, h, Deadline::fromTimeout());
}

void Communicator::abort() { transport_->abort(); }

}  // namespace sqz
