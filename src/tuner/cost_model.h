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

// Corrections from whole plans timed on the job's buffer (Profile::plans).
// The component model prices codecs and links; a real call also makes
// full-buffer passes (zeroing an accumulator, averaging, storing), shares
// cores with the other ranks and meets a shaper's burst. For each timed
// plan: per element, (timed - modelled) seconds at the timed size; a plan
// that was not timed (over the budget, or on another algorithm's list)
// takes the median of its algorithm's timed plans, never below zero (the
// burst that makes a small payload cheap does not carry over to a larger
// one), and so does a hierarchical plan (not timed: it makes the same
// full-buffer passes) from its inter-node algorithm; a plan of an
// algorithm with no timing gets none. A call of n
// elements then costs modelled(n) + correction x n, kept above a quarter
// of modelled(n).
class MeasuredPlans {
 public:
  using Build = std::function<Candidate(const PlanSpec&, double elements, int elementBytes)>;
  MeasuredPlans() = default;
  // `build` makes the candidate for a plan at a size on this topology.
  MeasuredPlans(const Profile& profile, const CostModel& model, const Build& build);

  bool empty() const { return perElement_.empty(); }
  // Sets every candidate's overheadSeconds for a call of n elements:
  // tuneSeconds (the same for all) plus its correction.
  void apply(std::vector<Candidate>& candidates, double n, const CostModel& model, double tuneSeconds) const;
  // Seconds to add to a candidate for a call of n elements, whose
  // stages (without overheads) the model prices at modelledSeconds.
  double extraSeconds(const Candidate& c, double n, double modelledSeconds) const;
  // auto's per-call statistics pass for n elements (timed at calibration,
  // scaled linearly); `fallback` when nothing was timed.
  double tuneSeconds(double n, double fallback) const;
  // One line per timed plan: timed, modelled, correction (for the log).
  std::string describe() const;

 private:
  struct Entry {
    double timed = 0, modelled = 0, perElement = 0;
  };
  double elements_ = 0, tuneSeconds_ = 0;
  std::map<std::string, Entry> perElement_;           // by plan name
  std::map<std::string, double> algorithmPerElement_;  // untimed plans, by algorithm
};

}  // namespace sqz
