// Before moving data, ranks exchange a small header describing the call
// (collective, count, type, op, root, compression, the settings that shape
// its messages, the extra traffic it carries, its codecs' random stream)
// with every peer. All ranks see all headers, so they reach the same
// verdict: either they agree, or every rank fails with sqzInvalidUsage and
// the same message - never a hang or a silent mix of mismatched buffers.
// The exchange also acts as a barrier.
//
// A small exact call carries its data in the same message (DirectAllreduce:
// header, then payload), so it costs one round, not two; the headers are
// still checked on every rank before any output is written. Every call's
// first message therefore goes to every peer under the same tag
// (tags::kHeader) and is received with room for such a payload, whatever
// this rank's own call is: a rank whose call carries data and one whose
// does not still meet, and disagree cleanly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "transport/transport.h"

namespace sqz {

enum class CollectiveKind : uint32_t { kAllReduce = 1, kBroadcast = 2, kAllGather = 3, kBarrier = 4 };

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
  // Per-rank facts that need not agree but that every rank must learn
  // (e.g. "my buffer holds NaN/Inf"); OR-ed across ranks, not compared.
  uint64_t rankFlags = 0;
};
static_assert(sizeof(CallHeader) == 56, "CallHeader is part of the wire protocol");
constexpr size_t kAgreedHeaderBytes = 48;  // the compared part: everything before rankFlags

// callFlags bits (agreed).
constexpr uint32_t kCallStatsFirst = 1;     // auto's statistics are reduced before the payload (sync)
constexpr uint32_t kCallStatsLagged = 2;    // auto's statistics travel with the payload (lagged)
constexpr uint32_t kCallPreparesTuner = 4;  // the tuner loads (or calibrates) its profile first

// rankFlags bits.
constexpr uint64_t kFlagNonFinite = 1;

// The most data a call's first message carries after its header, and the
// largest group in which calls do (a receive of that size from every peer
// is posted for every call; beyond it, headers travel alone).
constexpr size_t kHeaderPayloadMaxBytes = 32 << 10;
constexpr int kHeaderPayloadMaxRanks = 64;

// Whether a call of `bytes` on `nranks` ranks may carry its data with its header.
inline bool headerCanCarry(size_t bytes, int nranks) {
  return bytes <= kHeaderPayloadMaxBytes && nranks <= kHeaderPayloadMaxRanks;
}

// A call's first round: every rank sends every peer its header, followed by
// `payload` when the call carries its data with it, and receives every
// peer's. Keeps its buffers between calls.
class HeaderRound {
 public:
  // Runs the round (payloadBytes: 0, or headerCanCarry's bytes) and checks
  // the headers: throws sqzInvalidUsage, with the same message on every
  // rank, when they differ. Returns the OR of every rank's rankFlags.
  uint64_t run(Transport& transport, uint32_t seq, const CallHeader& mine, const void* payload, size_t payloadBytes,
               const Deadline& deadline);
  // Peer r's payload from the last run (payloadBytes long; r != this rank).
  const unsigned char* payload(int r) const { return in_.data() + r * slotBytes_ + sizeof(CallHeader); }

 private:
  size_t slotBytes_ = 0;
  std::vector<unsigned char> out_, in_;
  std::vector<size_t> received_;
};

// The header round without data (HeaderRound::run with no payload, on a
// per-thread round).
uint64_t agreeOnCall(Transport& transport, uint32_t seq, const CallHeader& mine, const Deadline& deadline);

}  // namespace sqz
