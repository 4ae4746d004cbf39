// Prices a Candidate from a Profile (DESIGN.md sections 1 and 3):
//   cost = encode + transfer + decode
//   encode/decode: values / codec throughput on the topology's device
//   transfer: per stage, steps x time(messagesPerStep x messageBytes x
//             linkSharers) on the stage's link curve: a step's concurrent
//             messages leave through one link together, paying its latency
//             once and sharing its bandwidth.
//   overhead: the agreement round every call pays, plus the candidate's own
//             overheadSeconds (auto's statistics pass, and the correction
//             from whole-plan timings, see MeasuredPlans)
// With a user cost model (bits, packets) the cost is that model's units of
// what this rank sends instead, and time is still reported.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "src/tuner/candidate.h"
#include "src/tuner/codec_throughput.h"
#include "src/tuner/profile.h"

namespace sqz {

struct CostBreakdown {
  double encodeSeconds = 0;
  double transferSeconds = 0;
  double decodeSeconds = 0;
  double overheadSeconds = 0;  // agreement round + Candidate::overheadSeconds
  double seconds = 0;        // encode + transfer + decode + overhead
  double bytesSent = 0;      // by one rank
  double cost = 0;           // what the selector divides by: seconds, bytes or packet cost
};

class CostModel {
 public:
  // Keeps a reference: the profile must outlive the model.
  CostModel(const Profile& profile, Device device) : profile_(profile), device_(device) {}

  CostBreakdown evaluate(const Candidate& c) const;
  double stageTransferSeconds(const Stage& s) const;
  const Profile& profile() const { return profile_; }
  Device device() const { return device_; }

 private:
  const Profile& profile_;
  Device device_;
};

// A link with a token-bucket burst (Profile::linkBurstBytes: tc tbf, a
// cloud NIC's allowance) refills it while the link is idle before a call
// (ProgressTracker::idleSeconds): the call finds min(burst, rate x idle)
// bytes of credit, and that many of the bytes it sends through the link go
// at once instead of at the rate. The seconds this saves a call that sends
// `bytes` through the link and spends `linkSeconds` on it (never more than
// that). Refill during the call itself is left out (conservative).
double linkCreditSavedSeconds(double bytes, double linkSeconds, double burstBytes, double bytesPerSecond,
                              double idleSeconds);

// Takes linkCreditSavedSeconds off each candidate's overheadSeconds, for
// the bytes its stages send through `link` (times the ranks sharing it),
// with the burst of model.profile() and its `link` curve's steady rate.
// The most it takes off is the candidate's time outside encoding and
// decoding: its transfer time in the model plus its own whole-plan
// correction (overheadSeconds less `sharedSeconds`, the part every
// candidate carries). A plan whose link time the component model misses
// (a ring's phases at a shaper's rate) carries it in its correction, and
// the credit saves that time too.
void applyLinkCredit(std::vector<Candidate>& candidates, const CostModel& model, LinkClass link,
                     double idleSeconds, double sharedSeconds = 0);

// The share of a plan's link credit that one call of it got: priced at
// `uncreditedSeconds` without the credit and `creditedSeconds` with all of
// it, the call took `measuredSeconds` (GradStats::planSeconds, averaged over
// ranks). 1 when it took the credited price or less, 0 at the uncredited
// price or more, linear between. The credit is the profile's: what the link
// banked while idle at calibration. It does not show when something else
// uses the link between the calls (another job, data loading, a checkpoint:
// the benchmark's MPI drain did it, perf/results/training.md, session of
// 2026-12-06 20:25 UTC), and then the price that assumes it is wrong by the
// whole credit. Logged, not applied (AutoTuner::choose says why). NaN (no
// evidence either way) when the credit is under
// kLinkCreditCheckShare of the uncredited price, within a call's own spread
// from one call to the next on a shared host, or when nothing was measured.
constexpr double kLinkCreditCheckShare = 0.1;
double linkCreditRealized(double uncreditedSeconds, double creditedSeconds, double measuredSeconds);

// Corrections from whole plans timed on the job's buffer (Profile::plans,
// and Profile::plansAtJobSize for a buffer smaller than that). The
// component model prices codecs and links; a real call also makes
// full-buffer passes (zeroing an accumulator, averaging, storing), shares
// cores with the other ranks, waits for them at each phase and meets a
// shaper's burst. At each timed size, a plan's correction is (timed -
// modelled) seconds; a plan that was not timed there (over the budget, or
// on another algorithm's list) takes the median per element of its
// algorithm's timed plans, never below zero (the burst that makes a small
// payload cheap does not carry over to a larger one), and so does a
// hierarchical plan (not timed: it makes the same full-buffer passes) from
// its inter-node algorithm; a plan of an algorithm with no timing gets none.
// A call of n elements then costs modelled(n) + correction(n), kept above a
// quarter of modelled(n), where correction(n) runs through zero at no
// elements and through each timed size, linearly between them; past
// Profile::plans' size it grows per element, and past the job size alone
// (nothing larger timed) it stays as it is, since a small call's extra cost
// is mostly per message and per phase, which a larger call does not
// multiply.
class MeasuredPlans {
 public:
  using Build = std::function<Candidate(const PlanSpec&, double elements, int elementBytes)>;
  MeasuredPlans() = default;
  // `build` makes the candidate for a plan at a size on this topology.
  MeasuredPlans(const Profile& profile, const CostModel& model, const Build& build);

  bool empty() const { return large_.plans.empty() && small_.plans.empty(); }
  // Sets every candidate's overheadSeconds for a call of n elements:
  // tuneSeconds (the same for all) plus its correction.
  void apply(std::vector<Candidate>& candidates, double n, const CostModel& model, double tuneSeconds) const;
  // Seconds to add to a candidate for a call of n elements, whose
  // stages (without overheads) the model prices at modelledSeconds.
  double extraSeconds(const Candidate& c, double n, double modelledSeconds) const;
  // auto's per-call statistics pass for n elements (timed at calibration,
  // scaled linearly); `fallback` when nothing was timed.
  double tuneSeconds(double n, double fallback) const;
  // One line per timed plan and size: timed, modelled, correction (for the log).
  std::string describe() const;

 private:
  struct Entry {
    double timed = 0, modelled = 0, perElement = 0;
  };
  // The plans timed at one size.
  struct TimedSize {
    double elements = 0, tuneSeconds = 0;
    std::map<std::string, Entry> plans;                  // by plan name
    std::map<std::string, double> algorithmPerElement;  // untimed plans, by algorithm
    TimedSize() = default;
    TimedSize(const PlanTimings& t, const CostModel& model, const Build& build);
    // c's correction in seconds at this size; false when it has none.
    bool correction(const Candidate& c, double* seconds) const;
  };
  TimedSize large_;  // Profile::plans
  TimedSize small_;  // Profile::plansAtJobSize
};

}  // namespace sqz
