#include "src/tuner/topology_fingerprint.h"

#include <cstdint>
#include <cstdio>
#include <map>

namespace sqz {

std::string topologyFingerprint(const std::vector<std::string>& nodeIdOfRank, bool gpu) {
  std::map<std::string, int> ranksPerNode;  // sorted: independent of rank order
  for (const std::string& id : nodeIdOfRank) ++ranksPerNode[id];
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  for (const auto& [id, n] : ranksPerNode) {
    mix(id);
    mix(std::to_string(n));
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "v1-%zur%zun-%s-%016llx", nodeIdOfRank.size(), ranksPerNode.size(),
                gpu ? "gpu" : "cpu", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace sqz
