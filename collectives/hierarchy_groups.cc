#include "collectives/hierarchy_groups.h"

#include <algorithm>

namespace sqz {

HierarchyGroups groupByNode(const std::vector<std::string>& nodeIds, int rank) {
  std::vector<std::string> order;  // nodes by first rank
  for (const auto& id : nodeIds)
    if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  auto nodeOf = [&](int r) { return static_cast<size_t>(std::find(order.begin(), order.end(), nodeIds[r]) - order.begin()); };
  std::vector<std::vector<int>> byNode(order.size());
  for (int r = 0; r < static_cast<int>(nodeIds.size()); ++r) byNode[nodeOf(r)].push_back(r);
  bool uniform = order.size() > 1 && byNode[0].size() > 1;
  for (const auto& g : byNode) uniform = uniform && g.size() == byNode[0].size();
  HierarchyGroups groups;
  if (!uniform) return groups;
  const std::vector<int>& mine = byNode[nodeOf(rank)];
  groups.node = mine;
  const size_t local = static_cast<size_t>(std::find(mine.begin(), mine.end(), rank) - mine.begin());
  for (const auto& g : byNode) groups.cross.push_back(g[local]);
  return groups;
}

}  // namespace sqz
