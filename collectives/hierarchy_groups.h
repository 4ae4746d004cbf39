// Which ranks a hierarchical allreduce groups: the ranks of this rank's
// node, and the ranks with this rank's local index on every node.
#pragma once

#include <string>
#include <vector>

namespace sqz {

struct HierarchyGroups {
  std::vector<int> node;   // global ranks on this rank's node, by local index
  std::vector<int> cross;  // global ranks with this rank's local index, by node

  bool empty() const { return node.empty(); }
};

// From every rank's node id: nodes in the order of their first rank, ranks
// of a node in rank order. Empty unless the ranks are spread evenly over
// more than one node with more than one rank each.
HierarchyGroups groupByNode(const std::vector<std::string>& nodeIds, int rank);

}  // namespace sqz
