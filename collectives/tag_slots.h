// Every tag sqz puts on a message, in one place. A receive matches on
// (sequence number, slot, sender), so two messages that can be in flight at
// once between the same pair of ranks must differ in one of them: the
// slots used within one sequence number must not overlap, nor may the
// sequence numbers that calibration takes for itself meet a call's.
#pragma once

#include <cstdint>

namespace sqz::tags {

constexpr uint32_t kBits = 24;                   // Tag::seq and Tag::slot each use 24 bits
constexpr uint32_t kMask = (1u << kBits) - 1;

// Slots within a call's sequence number.
// Single-round collectives (direct, broadcast, allgather): one slot.
constexpr uint32_t kRound = 0;
// Rings (RingSchedule): step << kRingChunkBits | chunk, for at most
// kRingMaxSteps steps (2(N-1) for N ranks) of at most 2^kRingChunkBits chunks.
constexpr uint32_t kRingChunkBits = 12;
constexpr uint32_t kRingMaxSteps = 0xffc;  // N <= 2047
constexpr uint32_t kRingEnd = kRingMaxSteps << kRingChunkBits;  // first slot above every ring slot
// Fixed slots of the all-to-all shapes, and of what rides along a call.
constexpr uint32_t kFixedBegin = 0xffff00;
constexpr uint32_t kQa2aScatter = 0xffff01;     // QuantizedAllreduce: chunks to their owners
constexpr uint32_t kQa2aGather = 0xffff02;      // ... and the owners' reduced chunks back
constexpr uint32_t kSparsePayload = 0xffff10;   // SparseAllreduce: top-K payloads
constexpr uint32_t kSparseCount = 0xffff11;     // ... the split shape's range sizes
constexpr uint32_t kSparseRange = 0xffff12;     // ... and its summed ranges
constexpr uint32_t kStats = 0xffff20;           // auto's lagged statistics, during the call's own collective
constexpr uint32_t kHierIntra = 0xffff30;       // HierarchicalAllreduce's intra-node stages (own sequence numbers)
constexpr uint32_t kHeader = 0xffffff;          // the call agreement (CallHeader)

// Calibration's sequence numbers (CalibrationOptions::tagSeq), far above
// the first calls' (calibration runs inside the first auto call). From a
// base: +0 the ring-step curve, +kCallRoundSeq the call round,
// +kSlowestRankSeq the slowest-rank rounds, +kBurstSeq the shaper's burst
// (its own slowest-rank rounds at +kBurstSeq + kSlowestRankSeq), +kPlanRunSeqs + i the i-th
// timed plan run. The tuner's second pass of plan timings (on the job's
// own buffer, after draining the links) uses the base + 2 * kPlanRunSeqs.
// sqz_calibrate runs its phases from kCalibrationSeq + k * kPlanRunSeqs
// (k = 0..3), none of which times plans.
constexpr uint32_t kCalibrationSeq = 0xfff000;
constexpr uint32_t kCallRoundSeq = 1;
constexpr uint32_t kSlowestRankSeq = 2;
constexpr uint32_t kBurstSeq = 3;
constexpr uint32_t kPlanRunSeqs = 0x100;
static_assert(kBurstSeq + kSlowestRankSeq < kPlanRunSeqs, "the burst's rounds run into the plan runs");
// On the slowest-rank sequence number: measurePlanSeconds counts its slots
// up from 0, the tuner's timing of its statistics pass up from here.
constexpr uint32_t kTuneTimingSlot = 0x800000;

static_assert(kRingEnd <= kFixedBegin, "ring slots run into the fixed slots");
static_assert(kRound < kRingEnd, "kRound is not used alongside a ring");
static_assert(kFixedBegin < kQa2aScatter && kQa2aGather < kSparsePayload && kSparseRange < kStats &&
                  kStats < kHierIntra && kHierIntra < kHeader,
              "fixed slots overlap or are out of order");
static_assert(kHeader == kMask, "the header slot is the last one");
static_assert(kCalibrationSeq + 4 * kPlanRunSeqs <= kMask, "calibration sequence numbers overflow 24 bits");

}  // namespace sqz::tags
