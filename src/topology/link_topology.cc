#include "src/topology/link_topology.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace sqz {
namespace {

std::vector<std::string> splitComma(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// UCX's IB transports: each concrete one with the names that select it
// (the alias "ib" selects them all).
struct IbTransport {
  const char* name;
  const char* family;
  const char* shortName;
};
constexpr IbTransport kIbTransports[] = {{"rc_verbs", "rc", "rc_v"}, {"rc_mlx5", "rc", "rc_x"},
                                         {"ud_verbs", "ud", "ud_v"}, {"ud_mlx5", "ud", "ud_x"},
                                         {"dc_mlx5", "dc", "dc_x"}};

bool selects(const std::vector<std::string>& list, const IbTransport& t) {
  for (const std::string& s : list)
    if (s == "ib" || s == t.name || s == t.family || s == t.shortName) return true;
  return false;
}

// Whether UCX_TLS lets UCX use an IB transport: a plain list must select
// one (or say "all"); a "^list" must leave one out of its exclusions.
bool tlsAllowsIb(const std::string& tls) {
  if (tls.empty()) return true;  // set but empty: UCX's default, all
  const bool negate = tls[0] == '^';
  const std::vector<std::string> list = splitComma(negate ? tls.substr(1) : tls);
  for (const IbTransport& t : kIbTransports) {
    const bool listed = selects(list, t);
    if (negate ? !listed : listed) return true;
  }
  if (!negate)
    for (const std::string& s : list)
      if (s == "all") return true;
  return false;
}

// The first line of a small sysfs file, "" when unreadable.
std::string readLine(const std::filesystem::path& p) {
  std::string line;
  std::ifstream in(p);
  std::getline(in, line);
  return line;
}

}  // namespace

bool ucxUsesRdma(const NetworkEvidence& e, std::string* why) {
  auto say = [why](const std::string& s) {
    if (why) *why = s;
  };
  std::vector<const RdmaPort*> active;
  for (const RdmaPort& p : e.ports)
    if (p.active) active.push_back(&p);
  if (active.empty()) {
    say(e.ports.empty() ? "no RDMA device in /sys/class/infiniband" : "no ACTIVE RDMA port");
    return false;
  }
  if (e.ucxTlsSet && !tlsAllowsIb(e.ucxTls)) {
    say("UCX_TLS=" + e.ucxTls + " enables no IB transport");
    return false;
  }
  if (e.ucxNetDevicesSet && !e.ucxNetDevices.empty() && e.ucxNetDevices != "all") {
    for (const std::string& d : splitComma(e.ucxNetDevices))
      for (const RdmaPort* p : active)
        if (d == p->device + ":" + std::to_string(p->port)) {
          say("UCX_NET_DEVICES names the active RDMA port " + d + " (" + p->linkLayer + ")");
          return true;
        }
    say("UCX_NET_DEVICES=" + e.ucxNetDevices + " names no active RDMA port");
    return false;
  }
  const RdmaPort& p = *active.front();
  say("active RDMA port " + p.device + ":" + std::to_string(p.port) + " (" + p.linkLayer + ")" +
      (e.ucxTlsSet ? ", UCX_TLS=" + e.ucxTls : ", UCX_TLS unset"));
  return true;
}

NetworkEvidence probeNetworkEvidence(const std::string& sysfsRoot) {
  namespace fs = std::filesystem;
  NetworkEvidence e;
  std::error_code ec;
  for (const auto& dev : fs::directory_iterator(sysfsRoot, ec)) {
    std::error_code ec2;
    for (const auto& port : fs::directory_iterator(dev.path() / "ports", ec2)) {
      RdmaPort p;
      p.device = dev.path().filename().string();
      p.port = std::atoi(port.path().filename().string().c_str());
      // "4: ACTIVE"
      p.active = readLine(port.path() / "state").find("ACTIVE") != std::string::npos;
      p.linkLayer = readLine(port.path() / "link_layer");
      e.ports.push_back(p);
    }
  }
  if (const char* tls = std::getenv("UCX_TLS")) {
    e.ucxTlsSet = true;
    e.ucxTls = tls;
  }
  if (const char* dev = std::getenv("UCX_NET_DEVICES")) {
    e.ucxNetDevicesSet = true;
    e.ucxNetDevices = dev;
  }
  return e;
}

// "node<TAB>gpu<TAB>rdma": node ids hold no tab (hostname/boot id/inode,
// or the user's SQZ_NODE_ID, which is checked).
std::string RankPlacement::pack() const {
  SQZ_REQUIRE(nodeId.find('\t') == std::string::npos && gpuBusId.find('\t') == std::string::npos,
              sqzInvalidUsage, "a node id or bus id contains a tab");
  return nodeId + "\t" + gpuBusId + "\t" + (rdma ? "1" : "0");
}

RankPlacement RankPlacement::unpack(const std::string& text) {
  const size_t a = text.find('\t');
  const size_t b = a == std::string::npos ? a : text.find('\t', a + 1);
  SQZ_REQUIRE(b != std::string::npos && text.size() == b + 2 && (text[b + 1] == '0' || text[b + 1] == '1'),
              sqzInvalidUsage, "malformed rank placement '%s'", text.c_str());
  RankPlacement p;
  p.nodeId = text.substr(0, a);
  p.gpuBusId = text.substr(a + 1, b - a - 1);
  p.rdma = text[b + 1] == '1';
  return p;
}

LinkClass classifyLink(const std::vector<RankPlacement>& ranks, int a, int b, GpuPeers* gpu) {
  const int n = static_cast<int>(ranks.size());
  SQZ_REQUIRE(a >= 0 && a < n && b >= 0 && b < n, sqzInvalidUsage, "ranks %d, %d not in [0, %d)", a, b, n);
  if (a == b) return LinkClass::Self;
  const RankPlacement &x = ranks[a], &y = ranks[b];
  if (x.nodeId != y.nodeId) return x.rdma && y.rdma ? LinkClass::Ib : LinkClass::Tcp;
  if (x.gpuBusId.empty() || y.gpuBusId.empty()) return LinkClass::Shm;
  if (x.gpuBusId == y.gpuBusId) return LinkClass::Pcie;
  return gpu && gpu->nvlink(x.gpuBusId, y.gpuBusId) ? LinkClass::NvLink : LinkClass::Pcie;
}

LinkClasses classifyTopology(const std::vector<RankPlacement>& ranks, GpuPeers* gpu) {
  auto slowness = [](LinkClass c) {
    switch (c) {
      case LinkClass::NvLink: return 0;
      case LinkClass::Self: return 1;
      case LinkClass::Pcie: return 2;
      case LinkClass::Shm: return 3;
      case LinkClass::Ib: return 4;
      case LinkClass::Tcp: return 5;
    }
    return 5;
  };
  LinkClasses out;
  bool sawIntra = false, sawInter = false;
  const int n = static_cast<int>(ranks.size());
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) {
      const LinkClass c = classifyLink(ranks, a, b, gpu);
      const bool inter = ranks[a].nodeId != ranks[b].nodeId;
      LinkClass& slot = inter ? out.inter : out.intra;
      bool& saw = inter ? sawInter : sawIntra;
      if (!saw || slowness(c) > slowness(slot)) slot = c;
      saw = true;
    }
  return out;
}

}  // namespace sqz
