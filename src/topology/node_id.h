// Which ranks share a node: hostname, the kernel's boot id and the network
// namespace identity, so that containers or namespaces on one host with the
// same hostname are told apart. SQZ_NODE_ID overrides it.
#pragma once

#include <string>

namespace sqz {

std::string localNodeId();

// Which ranks share this kernel, and so its cores: the kernel's boot id
// (hostname if it cannot be read). Unlike localNodeId(), network namespaces
// and SQZ_NODE_ID do not split it: a namespace testbed's "nodes" all run on
// one machine's cores.
std::string localMachineId();

}  // namespace sqz
