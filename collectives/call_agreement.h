// Before moving data, ranks exchange a small header describing the call
// (collective, count, type, op, root, compression, the settings that shape
// its messages, the extra traffic it carries, its codecs' random stream, the
// caller's tag) with every peer. All ranks see all headers, so they reach the
// same verdict: either they agree, or every rank fails with sqzInvalidUsage
// and the same message - never a hang or a silent mix of mismatched buffers.
// The exchange also acts as a barrier.
//
// A small exact call carries its data in the same message (DirectAllreduce:
// header, then payload), so it costs one round, not two; the headers are
// still checked on every rank before any output is written. Every call's
// first message therefore goes to every peer under the same tag
// (tags::kHeader) and is received with room for such a payload, whatever
// this rank's own call is: a rank whose call carries data and one whose
// does not still meet, and disagree cleanly.
//
// Ranks inside sqzJoin send a kJoin header alone instead: they are left out
// of the comparison, and serve the others' host allreduces with zeros. They
// learn each call from its header; a call that carried its data needs
// nothing more from them (the others read a joined rank's payload as zeros),
// one that did not gets zeros in its data exchange.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace sqz {

class ShmSegment;  // collectives/shm_segment.h

enum class CollectiveKind : uint32_t { kAllReduce = 1, kBroadcast = 2, kAllGather = 3, kBarrier = 4, kJoin = 5 };

// Fixed size: it travels alone, or at the start of a call's first message.
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
// Never sent: set in HeaderRound::run's (and agreeOnCall's) result when some ranks
// are inside sqzJoin.
constexpr uint64_t kFlagPeersJoined = 4;
// The call's data went into the shared segment's large slots with this
// header (shm_rs): a rank inside sqzJoin is done with it at once (its part
// reads as zeros), as with data carried after the header.
constexpr uint64_t kFlagDataInSegment = 8;

// The most data a call's first message carries after its header, and the
// largest group in which calls do (a receive of that size from every peer
// is posted for every call; beyond it, headers travel alone).
constexpr size_t kHeaderPayloadMaxBytes = 32 << 10;
constexpr int kHeaderPayloadMaxRanks = 64;

// Whether a call of `bytes` on `nranks` ranks may carry its data with its header.
inline bool headerCanCarry(size_t bytes, int nranks) {
  return bytes <= kHeaderPayloadMaxBytes && nranks <= kHeaderPayloadMaxRanks;
}

// What every rank concludes from the same headers (index = rank) and the
// bytes of data each rank's first message carried after its header.
struct CallVerdict {
  int joined = 0;          // ranks inside sqzJoin (all of them: the join is over)
  int first = -1;          // the lowest rank outside sqzJoin; its header is the agreed call
  uint64_t flags = 0;      // OR of the rankFlags of the ranks outside sqzJoin
  size_t carried = 0;      // the data bytes the ranks outside sqzJoin carried with their headers
  std::string error;       // non-empty: the ranks outside sqzJoin fail the call with this
};
CallVerdict judgeCall(const std::vector<CallHeader>& all, const std::vector<size_t>& carriedBytes);

// When every rank has joined: the one that joined last. Most calls before
// joining first; among ranks tied on calls, the later wall clock at entry,
// where entries within 100 ms count as together and the highest rank of
// them is last.
int lastJoinedRank(const std::vector<CallHeader>& all);

// A call's first round: every rank sends every peer its header, followed by
// `payload` when the call carries its data with it, and receives every
// peer's. With `shm` (a communicator whose ranks share one node), the round
// goes through the shared segment instead of messages: every call's first
// round on such a communicator must, so that any two calls meet.
// Keeps its buffers between calls.
class HeaderRound {
 public:
  // Runs the round (payloadBytes: 0, or headerCanCarry's bytes); returns
  // every rank's header (index = rank). Judge it with carriedBytes().
  const std::vector<CallHeader>& exchange(Transport& transport, uint32_t seq, const CallHeader& mine,
                                          const void* payload, size_t payloadBytes, const Deadline& deadline,
                                          ShmSegment* shm = nullptr);
  // The bytes of data each rank's message carried after its header.
  const std::vector<size_t>& carriedBytes() const { return carried_; }
  // Every rank's header from the last round (index = rank).
  const std::vector<CallHeader>& headers() const { return all_; }
  // exchange, then judgeCall: throws sqzInvalidUsage, with the same message
  // on every rank, when the ranks outside sqzJoin differ, or when some have
  // joined and the call is not a joinable allreduce. Returns the OR of their
  // rankFlags, plus kFlagPeersJoined when some ranks have joined; a joined
  // peer's payload then reads as zeros.
  uint64_t run(Transport& transport, uint32_t seq, const CallHeader& mine, const void* payload, size_t payloadBytes,
               const Deadline& deadline, ShmSegment* shm = nullptr);
  // Rank r's payload from the last run (payloadBytes long; over the
  // transport r != this rank, through a segment any r).
  const unsigned char* payload(int r) const;

 private:
  ShmSegment* shm_ = nullptr;  // the last round's segment, if it went through one
  std::vector<unsigned char> zeros_;  // a joined rank's payload, through a segment
  size_t slotBytes_ = 0;
  std::vector<unsigned char> out_, in_;
  std::vector<size_t> received_, carried_;
  std::vector<CallHeader> all_;
  std::vector<RequestId> reqs_;
};

// The header round without data (HeaderRound::run with no payload, on a
// per-thread round).
uint64_t agreeOnCall(Transport& transport, uint32_t seq, const CallHeader& mine, const Deadline& deadline,
                     ShmSegment* shm = nullptr);

}  // namespace sqz
