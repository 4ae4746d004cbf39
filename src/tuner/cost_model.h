// Prices a Candidate from a Profile (DESIGN.md sections 1 and 3):
//   cost = encode + transfer + decode
//   encode/decode: values / codec throughput on the topology's device
//   transfer: per stage, steps x time(messagesPerStep x messageBytes x
//             linkSharers) on the stage's link curve: a step's concurrent
//             messages leave through one link together, paying its latency
//             once and sharing its bandwidth.
// With a user cost model (bits, packets) the cost is that model's units of
// what this rank sends instead, and time is still reported.
#pragma once

#include <string>

#include "src/tuner/candidate.h"
#include "src/tuner/codec_throughput.h"
#include "src/tuner/profile.h"

namespace sqz {

struct CostBreakdown {
  double encodeSeconds = 0;
  double transferSeconds = 0;
  double decodeSeconds = 0;
  double seconds = 0;        // encode + transfer + decode
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

}  // namespace sqz
