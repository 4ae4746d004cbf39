#include "transport/ucx_transport.h"

#include <sched.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "common/trace_range.h"

namespace sqz {

struct UcxTransport::Op {
  uint32_t slot = 0;
  uint32_t generation = 0;  // bumped each time the slot is taken
  bool live = false;        // taken and not yet released
  int peer = -1;
  bool isRecv = false;
  size_t expected = 0;       // exact length, or the capacity when received is set
  size_t* received = nullptr;  // postRecvUpTo: where the length goes
  void* request = nullptr;  // UCX request, or null if completed immediately
  volatile bool done = false;
  ucs_status_t status = UCS_OK;
  size_t length = 0;
};

struct UcxTransport::Peer {
  UcxTransport* owner = nullptr;
  int rank = -1;
  ucp_ep_h ep = nullptr;
  volatile bool failed = false;
  ucs_status_t failure = UCS_OK;
  bool errorHandling = false;  // created with UCP_ERR_HANDLING_MODE_PEER
};

namespace {

// Messages below this size go eagerly on the network workers: a
// rendezvous (RTS, then the receiver's RTR, then the data) waits twice per
// message behind the bulk data the shaped TCP links queue, and the ring's
// chunks (SQZ_CHUNK_BYTES, 512 KiB) paid it on every step
// (perf/results/gloo_testbed.md). Bounded, so that an early message's
// unexpected-buffer copy stays small.
constexpr size_t kNetworkEagerBytes = 1 << 20;

// One ucp_context per process and kind (UCX's defaults, or the network
// workers' eager threshold), shared by every communicator (each has its own
// worker), created on first use and released with the last transport.
std::shared_ptr<void> acquireContext(bool network) {
  static std::mutex mu;
  static std::weak_ptr<void> shared[2];
  std::lock_guard<std::mutex> lock(mu);
  if (auto ctx = shared[network].lock()) return ctx;
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  SQZ_REQUIRE(st == UCS_OK, sqzSystemError, "ucp_config_read: %s", ucs_status_string(st));
  if (network) {
    st = ucp_config_modify(config, "RNDV_THRESH", std::to_string(kNetworkEagerBytes).c_str());
    if (st != UCS_OK) {
      ucp_config_release(config);
      fail(sqzSystemError, "ucp_config_modify RNDV_THRESH: %s", ucs_status_string(st));
    }
  }
  ucp_params_t params;
  std::memset(&params, 0, sizeof params);
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_TAG;
  params.mt_workers_shared = 1;
  ucp_context_h context = nullptr;
  st = ucp_init(&params, config, &context);
  ucp_config_release(config);
  SQZ_REQUIRE(st == UCS_OK, sqzSystemError, "ucp_init: %s", ucs_status_string(st));
  std::shared_ptr<void> ctx(context, [](void* c) { ucp_cleanup(static_cast<ucp_context_h>(c)); });
  shared[network] = ctx;
  return ctx;
}

ucp_worker_h createWorker(const std::shared_ptr<void>& context) {
  ucp_worker_params_t wp;
  std::memset(&wp, 0, sizeof wp);
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  ucp_worker_h worker = nullptr;
  ucs_status_t st = ucp_worker_create(static_cast<ucp_context_h>(context.get()), &wp, &worker);
  SQZ_REQUIRE(st == UCS_OK, sqzSystemError, "ucp_worker_create: %s", ucs_status_string(st));
  return worker;
}

// A worker's address, appended to `out` after its 4-byte length.
void appendAddress(ucp_worker_h worker, std::vector<uint8_t>* out) {
  ucp_address_t* addr = nullptr;
  size_t len = 0;
  ucs_status_t st = ucp_worker_get_address(worker, &addr, &len);
  SQZ_REQUIRE(st == UCS_OK, sqzSystemError, "ucp_worker_get_address: %s", ucs_status_string(st));
  const auto n = static_cast<uint32_t>(len);
  const auto* p = reinterpret_cast<const uint8_t*>(&n);
  out->insert(out->end(), p, p + sizeof n);
  out->insert(out->end(), reinterpret_cast<uint8_t*>(addr), reinterpret_cast<uint8_t*>(addr) + len);
  ucp_worker_release_address(worker, addr);
}

// localAddress()'s parts: the default worker's address, then the network
// worker's (empty when not offered).
struct WorkerAddresses {
  std::vector<uint8_t> standard, network;
};

WorkerAddresses parseAddresses(const std::vector<uint8_t>& blob, int rank) {
  WorkerAddresses a;
  size_t pos = 0;
  auto take = [&](std::vector<uint8_t>* part) {
    uint32_t n = 0;
    SQZ_REQUIRE(blob.size() - pos >= sizeof n, sqzRemoteError, "malformed UCX address from rank %d", rank);
    std::memcpy(&n, blob.data() + pos, sizeof n);
    pos += sizeof n;
    SQZ_REQUIRE(blob.size() - pos >= n, sqzRemoteError, "malformed UCX address from rank %d", rank);
    part->assign(blob.begin() + static_cast<std::ptrdiff_t>(pos), blob.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  };
  take(&a.standard);
  take(&a.network);
  SQZ_REQUIRE(pos == blob.size() && !a.standard.empty(), sqzRemoteError, "malformed UCX address from rank %d", rank);
  return a;
}

void onSendDone(void* /*request*/, ucs_status_t status, void* user) {
  auto* op = static_cast<UcxTransport::Op*>(user);
  op->status = status;
  op->done = true;
}

void onRecvDone(void* /*request*/, ucs_status_t status, const ucp_tag_recv_info_t* info,
                void* user) {
  auto* op = static_cast<UcxTransport::Op*>(user);
  op->status = status;
  if (status == UCS_OK && info) op->length = info->length;
  op->done = true;
}

void onPeerError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* peer = static_cast<UcxTransport::Peer*>(arg);
  peer->failure = status;
  peer->failed = true;
  SQZ_INFO("UCX reports peer %d failed: %s", peer->rank, ucs_status_string(status));
}

// Idle progress calls before a wait starts yielding the core: a short
// spin catches a message already on its way; with more ranks than cores
// on this node, spinning only delays the peer that would send it.
constexpr unsigned kSpinPolls = 4096;
constexpr unsigned kOversubscribedSpinPolls = 1;

constexpr uint64_t kTagBits = 24;
constexpr uint64_t kTagMask24 = (1ull << kTagBits) - 1;

}  // namespace

unsigned defaultSpinPolls(int ranksOnThisMachine, int usableCores) {
  return ranksOnThisMachine > usableCores ? kOversubscribedSpinPolls : kSpinPolls;
}

UcxTransport::UcxTransport(int rank, int size, bool offerNetworkWorker) : rank_(rank), size_(size) {
  context_ = acquireContext(false);
  worker_ = createWorker(context_);
  try {
    appendAddress(worker_, &address_);
  } catch (...) {
    ucp_worker_destroy(worker_);
    throw;
  }
  const size_t standardEnd = address_.size();
  if (offerNetworkWorker && envString("UCX_RNDV_THRESH").empty()) {
    // Optional: without it the communicator runs on the usual worker.
    try {
      networkContext_ = acquireContext(true);
      networkWorker_ = createWorker(networkContext_);
      appendAddress(networkWorker_, &address_);
      return;
    } catch (const Error& e) {
      SQZ_WARN("no eager network worker (%s); UCX's thresholds apply", e.what());
      if (networkWorker_) ucp_worker_destroy(networkWorker_);
      networkWorker_ = nullptr;
      networkContext_.reset();
      address_.resize(standardEnd);
    }
  }
  const uint32_t none = 0;
  address_.insert(address_.end(), reinterpret_cast<const uint8_t*>(&none), reinterpret_cast<const uint8_t*>(&none) + sizeof none);
}

void UcxTransport::connect(const std::vector<std::vector<uint8_t>>& addresses, const std::vector<bool>& sameNode,
                           int ranksOnThisMachine, bool nodesUnshared) {
  // SQZ_UCX_ERR_MODE=peer|none overrides the per-peer choice (auto).
  const std::string mode = envString("SQZ_UCX_ERR_MODE", "auto");
  SQZ_CHECK(static_cast<int>(addresses.size()) == size_, "expected %d worker addresses, got %zu", size_,
            addresses.size());
  std::vector<WorkerAddresses> parts;
  for (int r = 0; r < size_; ++r) parts.push_back(parseAddresses(addresses[r], r));
  // Every rank decides alike from the same addresses: the network workers
  // carry the communicator only if all offered one and no node holds two
  // ranks (a shared-memory link keeps UCX's own thresholds).
  onNetworkWorker_ = nodesUnshared && std::all_of(parts.begin(), parts.end(), [](const WorkerAddresses& a) {
                       return !a.network.empty();
                     });
  if (onNetworkWorker_) {
    ucp_worker_destroy(worker_);
    worker_ = networkWorker_;
    context_ = std::move(networkContext_);
  } else if (networkWorker_) {
    ucp_worker_destroy(networkWorker_);
  }
  networkWorker_ = nullptr;
  networkContext_.reset();
  peers_.resize(size_);
  // More ranks on this machine than usable cores: waits yield at once. The
  // machine, not the node: namespaces or containers on one host share cores.
  cpu_set_t cpus;
  const int cores = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  spinPolls_ = defaultSpinPolls(ranksOnThisMachine, cores);
  spinPolls_ = static_cast<unsigned>(envUnsigned("SQZ_SPIN_POLLS", spinPolls_, 0, 1u << 30));
  SQZ_INFO("waits spin %u polls before yielding (%d ranks on this machine, %d usable cores); %s", spinPolls_,
           ranksOnThisMachine, cores,
           onNetworkWorker_ ? "network workers: eager below RNDV_THRESH" : "UCX's eager/rendezvous thresholds");
  for (int r = 0; r < size_; ++r) {
    auto peer = std::make_unique<Peer>();
    peer->owner = this;
    peer->rank = r;
    ucp_ep_params_t ep;
    std::memset(&ep, 0, sizeof ep);
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER;
    const std::vector<uint8_t>& address = onNetworkWorker_ ? parts[r].network : parts[r].standard;
    ep.address = reinterpret_cast<const ucp_address_t*>(address.data());
    bool peerMode = mode == "peer" || (mode != "none" && !sameNode[r]);
    peer->errorHandling = peerMode;
    ep.err_mode = peerMode ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
    ep.err_handler.cb = onPeerError;
    ep.err_handler.arg = peer.get();
    ucs_status_t st = ucp_ep_create(worker_, &ep, &peer->ep);
    SQZ_REQUIRE(st == UCS_OK, endpointCreateResult(st), "ucp_ep_create to rank %d: %s", r,
                ucs_status_string(st));
    peers_[r] = std::move(peer);
  }
}

sqzResult_t endpointCreateResult(ucs_status_t status) {
  switch (status) {
    // A peer killed while the others connect: its segment is gone
    // (shmat fails), its socket refuses or resets.
    case UCS_ERR_SHMEM_SEGMENT:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_REJECTED:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_TIMED_OUT:
      return sqzRemoteError;
    default:
      return sqzSystemError;
  }
}

UcxTransport::~UcxTransport() {
  cancelAll();
  closeEndpoints(broken_);
  if (networkWorker_) ucp_worker_destroy(networkWorker_);
  if (worker_) ucp_worker_destroy(worker_);
}

uint64_t UcxTransport::ucxTag(int sender, Tag tag) const {
  return (static_cast<uint64_t>(sender) << 48) | ((tag.seq & kTagMask24) << 24) |
         (tag.slot & kTagMask24);
}

void UcxTransport::checkUsable() const {
  if (broken_) fail(sqzInvalidUsage, "communicator is unusable after an earlier failure (%s); destroy or abort it",
                    brokenReason_.c_str());
}

RequestId UcxTransport::postSend(int peer, Tag tag, const void* buf, size_t bytes) {
  checkUsable();
  SQZ_CHECK(peer >= 0 && peer < size_ && peers_[peer], "bad peer %d", peer);
  if (peers_[peer]->failed)
    failAndCancel(sqzRemoteError, "rank %d failed (%s)", peer, ucs_status_string(peers_[peer]->failure));
  Op* op = nullptr;
  const RequestId id = takeOp(&op);
  op->peer = peer;
  ucp_request_param_t p;
  std::memset(&p, 0, sizeof p);
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.send = onSendDone;
  p.user_data = op;
  ucs_status_ptr_t r = ucp_tag_send_nbx(peers_[peer]->ep, buf, bytes, ucxTag(rank_, tag), &p);
  if (r == nullptr) {
    op->done = true;
  } else if (UCS_PTR_IS_ERR(r)) {
    op->done = true;
    op->status = UCS_PTR_STATUS(r);
  } else {
    op->request = r;
  }
  return id;
}

RequestId UcxTransport::postRecv(int peer, Tag tag, void* buf, size_t bytes) {
  return postReceive(peer, tag, buf, bytes, nullptr);
}

RequestId UcxTransport::postRecvUpTo(int peer, Tag tag, void* buf, size_t capacity, size_t* received) {
  SQZ_CHECK(received != nullptr, "postRecvUpTo needs somewhere to put the length");
  return postReceive(peer, tag, buf, capacity, received);
}

RequestId UcxTransport::postReceive(int peer, Tag tag, void* buf, size_t bytes, size_t* received) {
  checkUsable();
  SQZ_CHECK(peer >= 0 && peer < size_, "bad peer %d", peer);
  Op* op = nullptr;
  const RequestId id = takeOp(&op);
  op->peer = peer;
  op->isRecv = true;
  op->expected = bytes;
  op->received = received;
  ucp_request_param_t p;
  std::memset(&p, 0, sizeof p);
  // No immediate completion: UCX 1.13 does not report the length of a
  // message matched at post time, and the length check needs it.
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
  p.cb.recv = onRecvDone;
  p.user_data = op;
  ucs_status_ptr_t r =
      ucp_tag_recv_nbx(worker_, buf, bytes, ucxTag(peer, tag), ~uint64_t(0), &p);
  if (UCS_PTR_IS_ERR(r)) {
    op->done = true;
    op->status = UCS_PTR_STATUS(r);
  } else {
    op->request = r;
  }
  return id;
}

RequestId UcxTransport::takeOp(Op** out) {
  uint32_t slot;
  if (freeSlots_.empty()) {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<Op>());
  } else {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
  }
  Op& op = *slots_[slot];
  const uint32_t generation = op.generation + 1;
  op.~Op();
  new (&op) Op();
  op.slot = slot;
  op.generation = generation;
  op.live = true;
  ++liveOps_;
  *out = &op;
  return (static_cast<uint64_t>(generation) << 32) | slot;
}

void UcxTransport::releaseOp(Op& op) {
  if (op.request) ucp_request_free(op.request);
  op.request = nullptr;
  op.live = false;
  --liveOps_;
  freeSlots_.push_back(op.slot);
}

UcxTransport::Op& UcxTransport::lookup(RequestId id) {
  const uint64_t slot = id & 0xffffffffu;
  const auto generation = static_cast<uint32_t>(id >> 32);
  SQZ_CHECK(slot < slots_.size() && slots_[slot] && slots_[slot]->live && slots_[slot]->generation == generation,
            "unknown request %llu", static_cast<unsigned long long>(id));
  return *slots_[slot];
}

void UcxTransport::finish(Op& op) {
  ucs_status_t status = op.status;
  bool isRecv = op.isRecv;
  size_t length = op.length, expected = op.expected;
  size_t* received = op.received;
  int peer = op.peer;
  releaseOp(op);
  if (status == UCS_ERR_MESSAGE_TRUNCATED) {
    failAndCancel(sqzInvalidUsage, "message from rank %d is larger than the %zu bytes expected (ranks disagree on the call)",
                  peer, expected);
  }
  if (status != UCS_OK) {
    failAndCancel(sqzRemoteError, "%s rank %d failed: %s", isRecv ? "receive from" : "send to", peer,
                  ucs_status_string(status));
  }
  if (received) {
    *received = length;
    return;
  }
  if (isRecv && length != expected) {
    failAndCancel(sqzInvalidUsage, "message from rank %d has %zu bytes, expected %zu (ranks disagree on the call)", peer,
                  length, expected);
  }
}

void UcxTransport::wait(RequestId id, const Deadline& deadline) {
  Op& op = lookup(id);
  TraceRange range("sqz transfer wait");
  unsigned idle = 0;
  while (!op.done) {
    if (ucp_worker_progress(worker_) != 0) {
      idle = 0;
      continue;
    }
    if (peers_[op.peer] && peers_[op.peer]->failed) {
      failAndCancel(sqzRemoteError, "rank %d failed (%s)", op.peer, ucs_status_string(peers_[op.peer]->failure));
    }
    ++idle;
    if (idle % 64 == 0 && deadline.expired()) {
      failAndCancel(sqzTimeout, "timed out after SQZ_TIMEOUT=%gs waiting for %s rank %d", timeoutSeconds(),
                    op.isRecv ? "a message from" : "a send to", op.peer);
    }
    // Spin a bounded while, then give the core away on every idle poll:
    // when ranks outnumber cores (mpirun --oversubscribe) the peer this
    // rank waits for may need this very core to run.
    if (idle >= spinPolls_) sched_yield();
  }
  finish(op);
}

void UcxTransport::checkPeers() {
  checkUsable();
  ucp_worker_progress(worker_);
  for (const auto& p : peers_)
    if (p && p->failed) failAndCancel(sqzRemoteError, "rank %d failed (%s)", p->rank, ucs_status_string(p->failure));
}

bool UcxTransport::test(RequestId id) {
  Op& op = lookup(id);
  if (!op.done) ucp_worker_progress(worker_);
  if (!op.done) {
    if (peers_[op.peer] && peers_[op.peer]->failed)
      failAndCancel(sqzRemoteError, "rank %d failed", op.peer);
    return false;
  }
  finish(op);
  return true;
}

void UcxTransport::failAndCancel(sqzResult_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const std::string msg = formatStringV(fmt, ap);
  va_end(ap);
  if (!broken_) {
    broken_ = true;
    brokenReason_ = msg;
  }
  cancelAll();
  throw Error(code, msg);
}

void UcxTransport::cancelAll() {
  if (liveOps_ == 0) return;
  bool anySend = false;
  for (auto& slot : slots_) {
    Op& op = *slot;
    if (!op.live || op.done) continue;
    if (op.isRecv && op.request) ucp_request_cancel(worker_, op.request);
    else anySend = true;
  }
  // Pending sends can only be stopped by closing their endpoints.
  if (anySend) {
    broken_ = true;
    if (brokenReason_.empty()) brokenReason_ = "operations were cancelled";
    closeEndpoints(true);
  }
  // Cancelled and purged requests complete on the next progress calls; a
  // send to a dead same-node peer (no peer error handling, so no forced
  // close) never does. Briefly, then: the failing call must still return
  // within about SQZ_TIMEOUT (the soak's fault run times it).
  Deadline deadline(0.5);
  for (;;) {
    bool all = true;
    for (auto& slot : slots_) all = all && (!slot->live || slot->done);
    if (all || deadline.expired()) break;
    ucp_worker_progress(worker_);
  }
  for (auto& slot : slots_) {
    if (!slot->live) continue;
    if (slot->done) {
      releaseOp(*slot);
    } else {
      // Should not happen; keep the op alive (leak) rather than let UCX
      // write through a dangling user_data pointer. Its slot gets a new op.
      SQZ_WARN("a UCX request did not complete after cancellation");
      const uint32_t index = slot->slot, generation = slot->generation;
      slot.release();
      slot = std::make_unique<Op>();
      slot->slot = index;
      slot->generation = generation;
      slot->live = true;
      releaseOp(*slot);
    }
  }
}

void UcxTransport::closeEndpoints(bool force) {
  std::vector<ucs_status_ptr_t> pending;
  for (auto& peer : peers_) {
    if (!peer || !peer->ep) continue;
    ucp_request_param_t p;
    std::memset(&p, 0, sizeof p);
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = (force || peer->failed) && peer->errorHandling ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    ucs_status_ptr_t r = ucp_ep_close_nbx(peer->ep, &p);
    peer->ep = nullptr;
    if (r && !UCS_PTR_IS_ERR(r)) pending.push_back(r);
  }
  // Flushing is bounded: a peer that already left must not stall us (on a
  // forced close, inside a failing call, hardly at all).
  Deadline deadline(force ? 1.0 : std::min(10.0, timeoutSecondsOrDefault()));
  for (auto r : pending) {
    while (ucp_request_check_status(r) == UCS_INPROGRESS && !deadline.expired())
      ucp_worker_progress(worker_);
    // A close that did not finish is cancelled and still handed back: UCX
    // releases a request in any state, and one left unfreed leaks until the
    // worker is destroyed under it.
    if (ucp_request_check_status(r) == UCS_INPROGRESS) ucp_request_cancel(worker_, r);
    ucp_request_free(r);
  }
}

void UcxTransport::abort() {
  broken_ = true;
  if (brokenReason_.empty()) brokenReason_ = "communicator was aborted";
  cancelAll();
  closeEndpoints(true);
}

}  // namespace sqz
