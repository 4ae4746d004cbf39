// Before moving data, ranks exchange a small header describing the call
// (collective, count, type, op, root, compression, the settings that shape
// its messages, the extra traffic it carries, its codecs' random stream)
// with every peer. All ranks see all headers, so they reach the same
// verdict: either they agree, or every rank fails with sqzInvalidUsage and
// the same message - never a hang or a silent mix of mismatched buffers.
// The exchange also acts as a barrier.
#pragma once

#include <cstdint>

#include "transport/transport.h"

namespace sqz {

enum class CollectiveKind : uint32_t { kAllReduce = 1, kBroadcast = 2, kAllGather = 3, kBarrier = 4 };

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

// Throws sqzInvalidUsage when any rank's header differs from rank 0's;
// returns the OR of every rank's rankFlags.
uint64_t agreeOnCall(Transport& transport, uint32_t seq, const CallHeader& mine, const Deadline& deadline);

}  // namespace sqz
