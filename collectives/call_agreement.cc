#include "collectives/call_agreement.h"

#include <cstring>
#include <string>

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
  }
  return "unknown";
}

std::string describe(const CallHeader& h) {
  return formatString("%s count=%llu type=%s op=%s root=%d compression#%08x settings#%08x stats=%s rng#%016llx",
                      kindName(h.kind), static_cast<unsigned long long>(h.count),
                      dataTypeName(static_cast<sqzDataType_t>(h.dtype)), redOpName(static_cast<sqzRedOp_t>(h.op)),
                      h.root, h.spec, h.settings,
                      h.callFlags & kCallStatsFirst    ? "first"
                      : h.callFlags & kCallStatsLagged ? "lagged"
                                                       : "none",
                      static_cast<unsigned long long>(h.rng));
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
  if (a.magic != b.magic) add("the protocol");
  return out;
}

}  // namespace

uint64_t HeaderRound::run(Transport& transport, uint32_t seq, const CallHeader& mine, const void* payload,
                          size_t payloadBytes, const Deadline& deadline) {
  const int n = transport.size(), me = transport.rank();
  if (n == 1) return mine.rankFlags;
  SQZ_CHECK(payloadBytes == 0 || headerCanCarry(payloadBytes, n), "a header cannot carry %zu bytes on %d ranks",
            payloadBytes, n);
  slotBytes_ = sizeof(CallHeader) + (n <= kHeaderPayloadMaxRanks ? kHeaderPayloadMaxBytes : 0);
  in_.resize(n * slotBytes_);
  out_.resize(sizeof(CallHeader) + payloadBytes);
  std::memcpy(out_.data(), &mine, sizeof mine);
  if (payloadBytes > 0) std::memcpy(out_.data() + sizeof mine, payload, payloadBytes);
  received_.assign(n, 0);
  std::memcpy(in_.data() + me * slotBytes_, &mine, sizeof mine);
  received_[me] = out_.size();
  const Tag tag{seq, tags::kHeader};
  std::vector<RequestId> reqs;
  reqs.reserve(2 * n);
  transport.groupStart();
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(transport.postRecvUpTo(r, tag, in_.data() + r * slotBytes_, slotBytes_, &received_[r]));
  for (int r = 0; r < n; ++r)
    if (r != me) reqs.push_back(transport.postSend(r, tag, out_.data(), out_.size()));
  transport.groupEnd();
  transport.waitAll(reqs, deadline);

  // Every rank holds every header now: the verdict is the same everywhere.
  std::vector<CallHeader> all(n);
  for (int r = 0; r < n; ++r) {
    SQZ_REQUIRE(received_[r] >= sizeof(CallHeader), sqzInvalidUsage,
                "rank %d's first message of a call has %zu bytes, shorter than a call header", r, received_[r]);
    std::memcpy(&all[r], in_.data() + r * slotBytes_, sizeof(CallHeader));
  }
  uint64_t flags = 0;
  for (int r = 0; r < n; ++r) flags |= all[r].rankFlags;
  for (int r = 1; r < n; ++r) {
    if (std::memcmp(&all[r], &all[0], kAgreedHeaderBytes) != 0) {
      fail(sqzInvalidUsage, "ranks disagree on the collective call (%s): rank 0 called %s, rank %d called %s",
           differences(all[0], all[r]).c_str(), describe(all[0]).c_str(), r, describe(all[r]).c_str());
    }
  }
  // Equal headers mean equal calls, so equal payloads; anything else is not sqz.
  for (int r = 0; r < n; ++r)
    SQZ_REQUIRE(received_[r] == out_.size(), sqzInvalidUsage,
                "rank %d's first message has %zu bytes for a call whose first message has %zu", r, received_[r],
                out_.size());
  return flags;
}

uint64_t agreeOnCall(Transport& transport, uint32_t seq, const CallHeader& mine, const Deadline& deadline) {
  thread_local HeaderRound round;
  return round.run(transport, seq, mine, nullptr, 0, deadline);
}

}  // namespace sqz
