// Reference link figures for hardware this project cannot measure (issue
// 10, item 5): published bandwidth and latency, each with its source, each
// marked "reference, not measured". sqz_plan builds a Profile from them;
// perf/profiles/ holds them as JSON (written by `sqz_plan --write-references`).
#pragma once

#include <string>
#include <vector>

#include "src/tuner/link_class.h"
#include "src/tuner/profile.h"

namespace sqz {

struct ReferenceLink {
  const char* name;          // "nvlink4", "ib-ndr", "eth-25g", ...
  LinkClass linkClass;
  double bytesPerSecond;     // per direction, per GPU (or per port)
  double latencySeconds;     // small-message one-way latency
  const char* description;
  const char* source;        // where the figures come from
};

const std::vector<ReferenceLink>& referenceLinks();
// Null when unknown.
const ReferenceLink* findReferenceLink(const std::string& name);

// A profile with one reference link's curve (latency + bytes / bandwidth at
// the calibration sizes) for its class, GPU codec throughputs, source
// "reference, not measured", fingerprint "any". Throws sqz::Error
// (sqzInvalidUsage) for an unknown name.
Profile referenceProfile(const std::string& name);
// Two links: the intra-node one and the network one (e.g. nvlink4 + ib-ndr).
Profile referenceProfile(const std::string& intraName, const std::string& interName);

}  // namespace sqz
