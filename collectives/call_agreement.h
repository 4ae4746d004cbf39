// Before moving data, ranks exchange a small header describing the call
// (collective, count, type, op, root, compression, the settings that shape
// its messages, the extra traffic it carries, its codecs' random stream, the
// caller's tag) with every peer. All ranks see all headers, so they reach the
// same verdict: either they agree, or every rank fails with sqzInvalidUsage
// and the same message - never a hang or a silent mix of mismatched buffers.
// The exchange also acts as a barrier. Ranks inside sqzJoin send a kJoin
// header instead: they are left out of the comparison, and serve the others'
// host allreduces with zeros.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace sqz {

enum class CollectiveKind : uint32_t { kAllReduce = 1, kBroadcast = 2, kAllGather = 3, kBarrier = 4, kJoin = 5 };

// Fixed size: a later change may send it inside the call's first data
// message instead of on its own.
struct CallHeader {
  uint32_t magic = 0x53515a43;  // "SQZC"
  uint32_t kind = 0;
  uint64_t count = 0;
  int32_t dtype = -1;
  int32_t op = -1;
  int32_t root = -1;
  uint32_t spec = 0;       // hash of the compression spec in force (and the plan SQZ_TUNE forces)
  uint32_t settings = 0;   // hash of the settings that shape messages (src/call_settings.h)
  uint32_t callFlags = 0;  // what extra traffic the call carries (kCall* bits)
  uint64_t rng = 0;        // hash of the codecs' (seed, step) for the call; 0 when it encodes nothing
  // The caller's own digest of the call (sqzCommSetCallTag): what the C
  // arguments cannot show, such as a tensor's name and shape. 0: none.
  // A kJoin header carries its entry call count in `count` and its entry
  // time here instead (lastJoinedRank).
  uint64_t tag = 0;
  // Per-rank facts that need not agree but that every rank must learn
  // (e.g. "my buffer holds NaN/Inf"); OR-ed across ranks, not compared.
  uint64_t rankFlags = 0;
};
static_assert(sizeof(CallHeader) == 64, "CallHeader is part of the wire protocol");
constexpr size_t kAgreedHeaderBytes = 56;  // the compared part: everything before rankFlags

// callFlags bits (agreed).
constexpr uint32_t kCallStatsFirst = 1;     // auto's statistics are reduced before the payload (sync)
constexpr uint32_t kCallStatsLagged = 2;    // auto's statistics travel with the payload (lagged)
constexpr uint32_t kCallPreparesTuner = 4;  // the tuner loads (or calibrates) its profile first

// rankFlags bits.
constexpr uint64_t kFlagNonFinite = 1;
// A host allreduce, which ranks inside sqzJoin can serve (with zeros, on the
// exact path); any other call fails on every rank while one has joined.
constexpr uint64_t kFlagJoinable = 2;
// Never sent: set in agreeOnCall's result when some ranks are inside sqzJoin.
constexpr uint64_t kFlagPeersJoined = 4;

// Every rank's header for call `seq` (index = rank).
std::vector<CallHeader> exchangeCallHeaders(Transport& transport, uint32_t seq, const CallHeader& mine,
                                            const Deadline& deadline);

// What every rank concludes from the same headers.
struct CallVerdict {
  int joined = 0;     // ranks inside sqzJoin (all of them: the join is over)
  int first = -1;     // the lowest rank outside sqzJoin; its header is the agreed call
  uint64_t flags = 0;  // OR of the rankFlags of the ranks outside sqzJoin
  std::string error;  // non-empty: the ranks outside sqzJoin fail the call with this
};
CallVerdict judgeCall(const std::vector<CallHeader>& all);

// When every rank has joined: the one that joined last. Most calls before
// joining first; among ranks tied on calls, the later wall clock at entry,
// where entries within 100 ms count as together and the highest rank of
// them is last.
int lastJoinedRank(const std::vector<CallHeader>& all);

// Throws sqzInvalidUsage when the ranks outside sqzJoin disagree, or when
// some have joined and the call is not a joinable allreduce; returns the OR
// of their rankFlags, plus kFlagPeersJoined when some ranks have joined.
uint64_t agreeOnCall(Transport& transport, uint32_t seq, const CallHeader& mine, const Deadline& deadline);

}  // namespace sqz
