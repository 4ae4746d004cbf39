// Measures what a Profile holds (DESIGN.md section 3): a link curve between
// the ranks of a transport, sent the way the collectives send (every rank
// sends to its right neighbour and receives from its left one at once, the
// shape of a ring step), and codec throughput on this CPU. Used by
// perf/sqz_calibrate and, for SQZ_CALIBRATE=quick|full, at communicator init.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "collectives/tag_slots.h"
#include "sqz.h"
#include "src/tuner/codec_throughput.h"
#include "src/tuner/link_curve.h"
#include "src/tuner/plan_name.h"
#include "transport/transport.h"

namespace sqz {

struct CalibrationOptions {
  bool quick = true;  // quick: 1 KiB..16 MiB, 3 repeats; full: 1 KiB..256 MiB, 7 repeats
  uint32_t tagSeq = tags::kCalibrationSeq;  // first of the sequence numbers calibration uses (tag_slots.h)
  // Whole-plan timing (measurePlanSeconds): plans the component model
  // predicts above planBudgetSeconds are not run (on slow links they are
  // link-bound, which the curve prices well), and timing stops once
  // planTotalSeconds have gone by. Each timed run follows planIdleSeconds
  // of idle links, as a call follows the compute between calls (a shaper
  // such as tbf refills its burst meanwhile).
  double planBudgetSeconds = 0.05;
  double planTotalSeconds = 0.6;
  double planIdleSeconds = 0.01;
  int planRepeats = 0;  // timed runs of each plan; 0: 3 (quick, the first also warms up) or 5 after a warm-up (full)
  // Before each plan's runs, drainLinks(planDrainBytes) (0: none; not
  // counted in planTotalSeconds): a plan that leaves the link idle part of
  // its time (CPU-bound encoding) lets a shaper save credit, on which the
  // next plan's back-to-back runs would ride.
  double planDrainBytes = 0;
  size_t chunkBytes = 512 << 10;  // the ring's pipelining granularity (SQZ_CHUNK_BYTES)
};

// Bytes each size of the link curve sends back to back before the repeats
// that count (measureRingStepCurve): enough to drain a traffic shaper's
// burst of up to half of it.
inline constexpr double kCalibrationDrainBytes = 1 << 20;
// Smallest volume the link curve times as one unit (small steps are timed
// in batches of this many bytes): a 4 ms scheduler stall at 4 MB/s buys 16
// KB of shaper credit, which the same batch spends.
inline constexpr double kCalibrationStepBatchBytes = 64 << 10;

// Collective over every rank of `t` (all must call it). Each point is this
// rank's time for one ring step of that size: the median over batches of
// steps (kCalibrationStepBatchBytes each, or one step where a step is
// larger), timed after kCalibrationDrainBytes / 2 have gone out at that size.
// Ranks measure slightly different curves: use rank 0's on every rank
// (broadcast its Profile::toJson()) so that selection stays identical.
LinkCurve measureRingStepCurve(Transport& t, const CalibrationOptions& o);

// Collective: every rank sends `bytes` to its right neighbour back to back
// (64 KiB messages on tag sequence o.tagSeq), so that a shaper's burst
// allowance is spent and what follows runs at the link's steady rate.
void drainLinks(Transport& t, double bytes, const CalibrationOptions& o);

// Collective: the bytes a rank's link lets go at once after idle time, over
// what it carries at its steady rate: a token-bucket shaper's burst (tc tbf
// on the testbed, a cloud NIC's allowance); 0 for a link without one. Each
// rank sends kCalibrationDrainBytes to its right neighbour once after
// kBurstIdleSeconds of idle links and twice straight after; with rate R
// (the faster drained send's), the burst is R x (drained time - first
// time - the two drained times' difference, their noise). Under 5% of the
// bytes sent it is taken as 0. Every rank gets the
// slowest rank's times, so every rank gets the same figure. Uses tags at
// o.tagSeq and o.tagSeq + kSlowestRankSeq.
double measureLinkBurstBytes(Transport& t, const CalibrationOptions& o);
inline constexpr double kBurstIdleSeconds = 0.25;

// Collective: median seconds of a small all-to-all round (every rank sends
// a CallHeader to every other, as the agreement before each call does), over
// back-to-back repeats.
double measureCallRoundSeconds(Transport& t, const CalibrationOptions& o);

// encode+EF, decode+accumulate and stats throughput of the standard levels
// (families: none, bf16, q8, q4, q2, q1, sign, sign:rot, topk, randk) on
// this CPU, one thread, on normal(0, 1e-3) data (quick: 2^20 elements, else
// 2^24).
CodecThroughput measureCpuCodecThroughput(bool quick);

// Collective: the largest of every rank's `value` (all ranks get it). Uses
// tags {o.tagSeq + tags::kSlowestRankSeq, *slot...}; *slot must advance
// identically on all ranks.
double slowestRank(Transport& t, double value, const CalibrationOptions& o, uint32_t* slot);

struct PlanToTime {
  PlanSpec spec;            // a flat plan (not hierarchical)
  double predictedSeconds;  // the component model's price, identical on all ranks
};

// Collective (every rank passes the same list): runs each plan's collective
// on `count` values of `input` (the job's own buffer, only read; sqzAvg, a
// scratch output and zeroed residuals), 3 timed runs (quick; the first one
// also warms up) or a warm-up and 5 (full), or o.planRepeats, each after
// o.planIdleSeconds of idle links (and after o.planDrainBytes sent around the
// ring), cheapest predicted first, and returns plan name -> the
// slowest rank's median seconds, identical on every rank. Plans over the
// budget, and all plans once the total time is spent, are left out.
std::map<std::string, double> measurePlanSeconds(Transport& t, const std::vector<PlanToTime>& plans, const void* input,
                                                 sqzDataType_t type, size_t count, const CalibrationOptions& o);

}  // namespace sqz
