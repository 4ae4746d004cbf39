#include "src/topology/node_id.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/env.h"

namespace sqz {

std::string localNodeId() {
  std::string forced = envString("SQZ_NODE_ID");
  if (!forced.empty()) return forced;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  std::string bootId;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> bootId;
  struct stat st{};
  std::string netns = stat("/proc/self/ns/net", &st) == 0 ? std::to_string(st.st_ino) : "";
  return std::string(host) + "/" + bootId + "/" + netns;
}

std::string localMachineId() {
  std::string bootId;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> bootId;
  if (!bootId.empty()) return bootId;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace sqz
