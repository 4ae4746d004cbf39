#include "src/comm.h"

#include <cstring>

#include "collectives/allgather.h"
#include "collectives/broadcast.h"
#include "collectives/call_agreement.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/log.h"
#include "src/bootstrap/rendezvous.h"
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
  return c;
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

void Communicator::setCompression(const std::string& spec) {
  if (spec != "none")
    fail(sqzInvalidArgument, "compression '%s' is not supported by this build (supported: none)", spec.c_str());
  compression_ = spec;
}

void Communicator::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op) {
  LogRankScope logRank(rank_);
  AllreduceArgs a;
  a.send = send;
  a.recv = recv;
  a.count = count;
  a.type = type;
  a.op = op;
  a.seq = nextSeq();
  a.deadline = Deadline::fromTimeout();
  CallHeader h;
  h.kind = static_cast<uint32_t>(CollectiveKind::kAllReduce);
  h.count = count;
  h.dtype = type;
  h.op = op;
  h.spec = specHash(compression_);
  agreeOnCall(*transport_, a.seq, h, a.deadline);
  if (count == 0) return;
  const size_t bytes = count * dataTypeSize(type);
  const bool direct = size_ > 1 && bytes <= config_.directMaxBytes;
  SQZ_TRACE("allreduce seq=%u count=%zu %s %s: %s", a.seq, count, dataTypeName(type), redOpName(op),
            direct ? "direct" : "ring");
  if (direct) direct_->run(a);
  else ring_->run(a);
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
