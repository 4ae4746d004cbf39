// Measures what a Profile holds (DESIGN.md section 3): a link curve between
// the ranks of a transport, sent the way the collectives send (every rank
// sends to its right neighbour and receives from its left one at once, the
// shape of a ring step), and codec throughput on this CPU. Used by
// perf/sqz_calibrate and, for SQZ_CALIBRATE=quick|full, at communicator init.
#pragma once

#include "src/tuner/codec_throughput.h"
#include "src/tuner/link_curve.h"
#include "transport/transport.h"

namespace sqz {

struct CalibrationOptions {
  bool quick = true;  // quick: 1 KiB..16 MiB, 3 repeats; full: 1 KiB..256 MiB, 7 repeats
  uint32_t tagSeq = 0xfff000;  // tag sequence number reserved for calibration messages
};

// Collective over every rank of `t` (all must call it). Each point is the
// median over repeats of this rank's time for one ring step of that size.
// Ranks measure slightly different curves: use rank 0's on every rank
// (broadcast its Profile::toJson()) so that selection stays identical.
LinkCurve measureRingStepCurve(Transport& t, const CalibrationOptions& o);

// Collective: median seconds of a small all-to-all round (every rank sends
// 40 bytes to every other, as the agreement before each call does), over
// back-to-back repeats.
double measureCallRoundSeconds(Transport& t, const CalibrationOptions& o);

// encode+EF, decode+accumulate and stats throughput of the standard levels
// (families: none, bf16, q8, q4, q2, q1, topk, randk) on this CPU, one
// thread, on normal(0, 1e-3) data (quick: 2^20 elements, else 2^24).
CodecThroughput measureCpuCodecThroughput(bool quick);

}  // namespace sqz
