// The key a profile is stored under: what decides which links a job's
// ranks cross. Same ranks-per-node layout on the same set of nodes with the
// same device kind => same fingerprint, on every rank.
#pragma once

#include <string>
#include <vector>

namespace sqz {

// nodeIdOfRank[r]: localNodeId() of rank r (all ranks' ids, gathered).
// "v1-<ranks>r<nodes>n-<cpu|gpu>-<16 hex digits of FNV-1a over the sorted
// node ids and ranks per node>".
std::string topologyFingerprint(const std::vector<std::string>& nodeIdOfRank, bool gpu);

}  // namespace sqz
