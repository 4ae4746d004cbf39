// Which ranks share a node: hostname, the kernel's boot id and the network
// namespace identity, so that containers or namespaces on one host with the
// same hostname are told apart. SQZ_NODE_ID overrides it.
#pragma once

#include <string>

namespace sqz {

std::string localNodeId();

}  // namespace sqz
