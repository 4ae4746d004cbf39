#include "collectives/call_agreement.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "collectives/peers.h"
#include "collectives/shm_segment.h"
#include "collectives/tag_slots.h"
#include "common/dtype.h"
#include "common/error.h"

namespace sqz {
namespace {

const char* kindName(uint32_t k) {
  switch (static_cast<CollectiveKind>(k)) {
    case CollectiveKind::kAllReduce: return "allreduce";
    case CollectiveKind::kBroadcast: return "broadcast";
    case CollectiveKind::kAllGather: return "allgather";
    case CollectiveKind::kBarrier: return "barrier";
    case CollectiveKind::kJoin: return "join";
  }
  return "unknown";
}

std::string describe(const CallHeader& h) {
  std::string s =
      formatString("%s count=%llu type=%s op=%s root=%d compression#%08x settings#%08x stats=%s rng#%016llx",
                   kindName(h.kind), static_cast<unsigned long long>(h.count),
                   dataTypeName(static_cast<sqzDataType_t>(h.dtype)), redOpName(static_cast<sqzRedOp_t>(h.op)),
                   h.root, h.spec, h.settings,
                   h.callFlags & kCallStatsFirst    ? "first"
                   : h.callFlags & kCallStatsLagged ? "lagged"
                                                    : "none",
                   static_cast<unsigned long long>(h.rng));
  if (h.tag != 0) s += formatString(" tag#%016llx", static_cast<unsigned long long>(h.tag));
  return s;
}

// What differs between two headers, as a user would fix it.
std::string differences(const CallHeader& a, const CallHeader& b) {
  std::string out;
  auto add = [&out](const char* what) { out += out.empty() ? what : std::string("; ") + what; };
  if (a.kind != b.kind || a.count != b.count || a.dtype != b.dtype || a.op != b.op || a.root != b.root)
    add("the call's arguments");
  if (a.spec != b.spec) add("the compression spec");
  if (a.settings != b.settings)
    add("settings that shape the messages (SQZ_TUNE, SQZ_TUNE_MODE, SQZ_DIRECT_MAX_BYTES, SQZ_MIN_BYTES, "
        "SQZ_CHUNK_BYTES, SQZ_STATS_EVERY_MAX)");
  if (a.callFlags != b.callFlags) add("whether auto's statistics travel with the call (a different state?)");
  if (a.rng != b.rng) add("the codecs' random stream (SQZ_SEED, or the state's call count: a different sqzState?)");
  if (a.tag != b.tag) add("the caller's tag (sqzCommSetCallTag: what the arguments do not show, e.g. shapes)");
  if (a.magic != b.magic) add("the protocol");
  return out;
}

bool isJoin(const CallHeader& h) { return h.kind == static_cast<uint32_t>(CollectiveKind::kJoin); }

}  // namespace

const std::vector<CallHeader>& HeaderRound::exchange(Transport& transport, uint32_t seq, const CallHeader& mine,
                                                     const void* payload, size_t payloadBytes,
                                                     const Deadline& deadline, ShmSegment* shm) {
  const int n = transport.size(), me = transport.rank();
  SQZ_CHECK(payloadBytes == 0 || headerCanCarry(payloadBytes, n), "a header cannot carry %zu bytes on %d ranks",
            payloadBytes, n);
  shm_ = shm;
  if (shm) {
    shm->exchange(transport, mine, payload, payloadBytes, deadline);
    all_.resize(n);
    carried_.resize(n);
    for (int r = 0; r < n; ++r) {
      all_[r] = shm->header(r);
      carried_[r] = shm->carried(r);
    }
    return all_;
  }
  slotBytes_ = sizeof(CallHeader) + (n <= kHeaderPayloadMaxRanks ? kHeaderPayloadMaxBytes : 0);
  in_.resize(n * slotBytes_);
  out_.resize(sizeof(CallHeader) + payloadBytes);
  std::memcpy(out_.data(), &mine, sizeof mine);
  if (payloadBytes > 0) std::memcpy(out_.data() + sizeof mine, payload, payloadBytes);
  received_.assign(n, 0);
  std::memcpy(in_.data() + me * slotBytes_, &mine, sizeof mine);
  received_[me] = out_.size();
  all_.assign(n, CallHeader{});
  all_[me] = mine;
  carried_.assign(n, payloadBytes);
  if (n == 1) return all_;
  const Tag tag{seq, tags::kHeader};
  reqs_.clear();  // a failed call left its ids here (cancelled since)
  postPeerExchangeUpTo(transport, tag, out_.data(), out_.size(), in_.data(), slotBytes_, received_.data(), reqs_);
  transport.waitAll(reqs_, deadline);
  for (int r = 0; r < n; ++r) {
    SQZ_REQUIRE(received_[r] >= sizeof(CallHeader), sqzInvalidUsage,
                "rank %d's first message of a call has %zu bytes, shorter than a call header", r, received_[r]);
    std::memcpy(&all_[r], in_.data() + r * slotBytes_, sizeof(CallHeader));
    carried_[r] = received_[r] - sizeof(CallHeader);
  }
  return all_;
}

uint64_t HeaderRound::run(Transport& transport, uint32_t seq, const CallHeader& mine, const void* payload,
                          size_t payloadBytes, const Deadline& deadline, ShmSegment* shm) {
  exchange(transport, seq, mine, payload, payloadBytes, deadline, shm);
  // Every rank holds every header now: the verdict is the same everywhere.
  const CallVerdict v = judgeCall(all_, carriedBytes());
  if (!v.error.empty()) fail(sqzInvalidUsage, "%s", v.error.c_str());
  // A joined rank sends its header alone and adds zeros.
  if (v.joined > 0 && shm) zeros_.assign(payloadBytes, 0);
  if (v.joined > 0 && !shm)
    for (int r = 0; r < transport.size(); ++r)
      if (isJoin(all_[r])) std::memset(in_.data() + r * slotBytes_ + sizeof(CallHeader), 0, payloadBytes);
  return v.flags;
}

const unsigned char* HeaderRound::payload(int r) const {
  if (shm_) return isJoin(all_[r]) ? zeros_.data() : shm_->payload(r);
  return in_.data() + r * slotBytes_ + sizeof(CallHeader);
}

CallVerdict judgeCall(const std::vector<CallHeader>& all, const std::vector<size_t>& carriedBytes) {
  CallVerdict v;
  const int n = static_cast<int>(all.size());
  std::string joinedRanks;
  for (int r = 0; r < n; ++r) {
    if (isJoin(all[r])) {
      ++v.joined;
      joinedRanks += (joinedRanks.empty() ? "" : ", ") + std::to_string(r);
    } else if (v.first < 0) {
      v.first = r;
    }
  }
  if (v.first < 0) return v;
  const CallHeader& agreed = all[v.first];
  v.carried = carriedBytes[v.first];
  bool joinable = true;
  for (int r = v.first; r < n; ++r) {
    if (isJoin(all[r])) continue;
    v.flags |= all[r].rankFlags;
    joinable = joinable && (all[r].rankFlags & kFlagJoinable);
    if (v.error.empty() && std::memcmp(&all[r], &agreed, kAgreedHeaderBytes) != 0) {
      v.error = formatString("ranks disagree on the collective call (%s): rank %d called %s, rank %d called %s",
                             differences(agreed, all[r]).c_str(), v.first, describe(agreed).c_str(), r,
                             describe(all[r]).c_str());
    }
  }
  // Equal headers mean equal calls, so equal payloads; anything else is not sqz.
  for (int r = v.first; r < n && v.error.empty(); ++r) {
    if (!isJoin(all[r]) && carriedBytes[r] != v.carried)
      v.error = formatString("rank %d's first message carries %zu bytes of data, rank %d's %zu, for the same call", r,
                             carriedBytes[r], v.first, v.carried);
  }
  v.flags &= ~kFlagJoinable;
  if (v.error.empty() && v.joined > 0) {
    if (!joinable) {
      v.error = formatString("%s is not supported while rank%s %s ha%s joined (sqzJoin): until every rank joins, "
                             "only host allreduces go on (the joined ranks add zeros)",
                             kindName(agreed.kind), v.joined > 1 ? "s" : "", joinedRanks.c_str(),
                             v.joined > 1 ? "ve" : "s");
    } else {
      v.flags |= kFlagPeersJoined;
    }
  }
  return v;
}

int lastJoinedRank(const std::vector<CallHeader>& all) {
  // Most calls before joining; among those, the latest entry, except that
  // ranks within kJoinedTogetherNs of it joined together and the highest
  // rank of them counts as last (as Horovod's coordinator, which handles
  // one cycle's requests in rank order).
  constexpr uint64_t kJoinedTogetherNs = 100'000'000;
  uint64_t calls = 0, latest = 0;
  for (const CallHeader& h : all) calls = std::max(calls, h.count);
  for (const CallHeader& h : all)
    if (h.count == calls) latest = std::max(latest, h.tag);
  int last = -1;
  for (int r = 0; r < static_cast<int>(all.size()); ++r)
    if (all[r].count == calls && all[r].tag + kJoinedTogetherNs >= latest) last = r;
  return last;
}

uint64_t agreeOnCall(Transport& transport, uint32_t seq, const CallHeader& mine, const Deadline& deadline,
                     ShmSegment* shm) {
  thread_local HeaderRound round;
  return round.run(transport, seq, mine, nullptr, 0, deadline, shm);
}

}  // namespace sqz
