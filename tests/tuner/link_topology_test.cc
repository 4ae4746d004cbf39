// Link classification (src/topology/link_topology.h) on injected inputs:
// placements, a fake NVLink map, fake sysfs trees and UCX variables.
#include "src/topology/link_topology.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>

#include "common/error.h"
#include "src/topology/gpu_probe.h"

namespace sqz {
namespace {

using Links = std::set<std::pair<std::string, std::string>>;

// NVLink between the listed pairs of bus ids only.
class FakePeers final : public GpuPeers {
 public:
  explicit FakePeers(Links links) : links_(std::move(links)) {}
  bool nvlink(const std::string& a, const std::string& b) override {
    return links_.count({a, b}) > 0 || links_.count({b, a}) > 0;
  }

 private:
  Links links_;
};

RankPlacement host(const std::string& node, bool rdma = false) { return {node, "", rdma}; }
RankPlacement gpu(const std::string& node, const std::string& bus, bool rdma = false) { return {node, bus, rdma}; }

TEST(ClassifyLink, SelfSharedMemoryAndNetwork) {
  std::vector<RankPlacement> r = {host("a"), host("a"), host("b"), host("c")};
  EXPECT_EQ(classifyLink(r, 1, 1, nullptr), LinkClass::Self);
  EXPECT_EQ(classifyLink(r, 0, 1, nullptr), LinkClass::Shm);
  EXPECT_EQ(classifyLink(r, 1, 2, nullptr), LinkClass::Tcp);
  EXPECT_EQ(classifyLink(r, 3, 0, nullptr), LinkClass::Tcp);
  EXPECT_THROW(classifyLink(r, 0, 4, nullptr), Error);
}

TEST(ClassifyLink, InfiniBandOnlyWhenBothNodesUseRdma) {
  std::vector<RankPlacement> r = {host("a", true), host("b", true), host("c", false)};
  EXPECT_EQ(classifyLink(r, 0, 1, nullptr), LinkClass::Ib);
  EXPECT_EQ(classifyLink(r, 1, 0, nullptr), LinkClass::Ib);
  EXPECT_EQ(classifyLink(r, 0, 2, nullptr), LinkClass::Tcp);
}

TEST(ClassifyLink, GpusNvlinkPcieAndSharedDevice) {
  FakePeers peers(Links{{"0000:17:00.0", "0000:18:00.0"}});
  std::vector<RankPlacement> r = {gpu("a", "0000:17:00.0"), gpu("a", "0000:18:00.0"), gpu("a", "0000:ca:00.0"),
                                  gpu("a", "0000:17:00.0"), host("a"), gpu("b", "0000:17:00.0", true)};
  EXPECT_EQ(classifyLink(r, 0, 1, &peers), LinkClass::NvLink);
  EXPECT_EQ(classifyLink(r, 1, 0, &peers), LinkClass::NvLink);
  EXPECT_EQ(classifyLink(r, 0, 2, &peers), LinkClass::Pcie);    // no NVLink between them
  EXPECT_EQ(classifyLink(r, 0, 1, nullptr), LinkClass::Pcie);   // nothing to ask: PCIe
  EXPECT_EQ(classifyLink(r, 0, 3, &peers), LinkClass::Pcie);    // one device shared: staged via the host
  EXPECT_EQ(classifyLink(r, 0, 4, &peers), LinkClass::Shm);     // one side in host memory
  EXPECT_EQ(classifyLink(r, 0, 5, &peers), LinkClass::Tcp);     // same bus id on another node is another GPU
}

TEST(ClassifyTopology, SlowestPairPerLevel) {
  FakePeers peers(Links{{"g0", "g1"}, {"g2", "g3"}});
  // Node a: NVLink pair; node b: two GPUs without NVLink -> intra is PCIe.
  std::vector<RankPlacement> r = {gpu("a", "g0", true), gpu("a", "g1", true), gpu("b", "g2", true),
                                  gpu("b", "g9", true)};
  LinkClasses c = classifyTopology(r, &peers);
  EXPECT_EQ(c.intra, LinkClass::Pcie);
  EXPECT_EQ(c.inter, LinkClass::Ib);
  r[3].gpuBusId = "g3";
  EXPECT_EQ(classifyTopology(r, &peers).intra, LinkClass::NvLink);
  r[2].rdma = false;  // one node without RDMA: its links are TCP
  EXPECT_EQ(classifyTopology(r, &peers).inter, LinkClass::Tcp);
}

TEST(ClassifyTopology, OneNodeAndOneRankPerNode) {
  EXPECT_EQ(classifyTopology({host("a"), host("a")}, nullptr).intra, LinkClass::Shm);
  EXPECT_EQ(classifyTopology({host("a"), host("a")}, nullptr).inter, LinkClass::Tcp);  // none: the default
  LinkClasses c = classifyTopology({host("a", true), host("b", true)}, nullptr);
  EXPECT_EQ(c.intra, LinkClass::Shm);
  EXPECT_EQ(c.inter, LinkClass::Ib);
}

TEST(RankPlacement, PackUnpackRoundTripAndRejectsGarbage) {
  for (const RankPlacement& p : {host("h/boot/123"), gpu("n", "0000:17:00.0", true), host("", false)}) {
    RankPlacement q = RankPlacement::unpack(p.pack());
    EXPECT_EQ(q.nodeId, p.nodeId);
    EXPECT_EQ(q.gpuBusId, p.gpuBusId);
    EXPECT_EQ(q.rdma, p.rdma);
  }
  EXPECT_THROW(RankPlacement::unpack("node"), Error);
  EXPECT_THROW(RankPlacement::unpack("node\tbus\t2"), Error);
  EXPECT_THROW(RankPlacement::unpack("node\tbus\t1x"), Error);
  EXPECT_THROW(host("a\tb").pack(), Error);
}

RdmaPort port(const std::string& dev, int n, bool active, const std::string& layer = "InfiniBand") {
  return {dev, n, active, layer};
}

TEST(UcxUsesRdma, NeedsAnActivePort) {
  NetworkEvidence e;
  std::string why;
  EXPECT_FALSE(ucxUsesRdma(e, &why));
  EXPECT_NE(why.find("no RDMA device"), std::string::npos) << why;
  e.ports = {port("mlx5_0", 1, false)};
  EXPECT_FALSE(ucxUsesRdma(e, &why));
  EXPECT_NE(why.find("ACTIVE"), std::string::npos) << why;
  e.ports.push_back(port("mlx5_1", 1, true));
  EXPECT_TRUE(ucxUsesRdma(e, &why));
  EXPECT_NE(why.find("mlx5_1:1"), std::string::npos) << why;
  e.ports = {port("mlx5_0", 1, true, "Ethernet")};  // RoCE: UCX's rc/ud/dc run over it too
  EXPECT_TRUE(ucxUsesRdma(e));
}

TEST(UcxUsesRdma, UcxTls) {
  NetworkEvidence e;
  e.ports = {port("mlx5_0", 1, true)};
  e.ucxTlsSet = true;
  const std::pair<const char*, bool> cases[] = {
      {"tcp", false},      {"tcp,sm,self", false}, {"sm,rc", true},   {"rc_x,sm", true},   {"ud_verbs", true},
      {"dc_mlx5", true},   {"ib", true},           {"all", true},     {"^ib", false},      {"^rc,ud,dc", false},
      {"^tcp", true},      {"^rc", true},  // ud and dc are still allowed
      {"^rc,ud_v,ud_x,dc_mlx5", false}, {"^rc_verbs,ud,dc", true},  // rc_mlx5 is left
      {"", true},          {"cuda_copy,sm", false}};
  for (const auto& [tls, want] : cases) {
    e.ucxTls = tls;
    EXPECT_EQ(ucxUsesRdma(e), want) << "UCX_TLS=" << tls;
  }
}

TEST(UcxUsesRdma, UcxNetDevices) {
  NetworkEvidence e;
  e.ports = {port("mlx5_0", 1, true), port("mlx5_1", 1, false)};
  e.ucxNetDevicesSet = true;
  e.ucxNetDevices = "eth0";
  EXPECT_FALSE(ucxUsesRdma(e));
  e.ucxNetDevices = "mlx5_1:1";  // named, but down
  EXPECT_FALSE(ucxUsesRdma(e));
  e.ucxNetDevices = "eth0,mlx5_0:1";
  EXPECT_TRUE(ucxUsesRdma(e));
  e.ucxNetDevices = "mlx5_0:2";
  EXPECT_FALSE(ucxUsesRdma(e));
  e.ucxNetDevices = "all";
  EXPECT_TRUE(ucxUsesRdma(e));
}

class ScopedUnset {
 public:
  explicit ScopedUnset(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v, had_ = true;
    unsetenv(name);
  }
  ~ScopedUnset() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

TEST(ProbeNetworkEvidence, ReadsAFakeSysfsTreeAndTheEnvironment) {
  namespace fs = std::filesystem;
  ScopedUnset tls("UCX_TLS"), dev("UCX_NET_DEVICES");
  const fs::path root = fs::temp_directory_path() / ("sqz_ib_test." + std::to_string(getpid()));
  fs::remove_all(root);
  auto write = [](const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  };
  write(root / "mlx5_0/ports/1/state", "4: ACTIVE");
  write(root / "mlx5_0/ports/1/link_layer", "InfiniBand");
  write(root / "mlx5_1/ports/1/state", "1: DOWN");
  write(root / "mlx5_1/ports/1/link_layer", "Ethernet");
  NetworkEvidence e = probeNetworkEvidence(root.string());
  ASSERT_EQ(e.ports.size(), 2u);
  EXPECT_FALSE(e.ucxTlsSet);
  EXPECT_FALSE(e.ucxNetDevicesSet);
  int active = 0;
  for (const RdmaPort& p : e.ports) {
    EXPECT_EQ(p.port, 1);
    if (p.device == "mlx5_0") {
      EXPECT_TRUE(p.active);
      EXPECT_EQ(p.linkLayer, "InfiniBand");
      ++active;
    } else {
      EXPECT_EQ(p.device, "mlx5_1");
      EXPECT_FALSE(p.active);
      EXPECT_EQ(p.linkLayer, "Ethernet");
    }
  }
  EXPECT_EQ(active, 1);
  EXPECT_TRUE(ucxUsesRdma(e));
  setenv("UCX_TLS", "tcp", 1);
  e = probeNetworkEvidence(root.string());
  EXPECT_TRUE(e.ucxTlsSet);
  EXPECT_EQ(e.ucxTls, "tcp");
  EXPECT_FALSE(ucxUsesRdma(e));
  unsetenv("UCX_TLS");
  fs::remove_all(root);
  EXPECT_TRUE(probeNetworkEvidence(root.string()).ports.empty());  // no such directory: no RDMA
}

// On this machine: whatever it has, the probes answer without throwing, and
// without a usable device they say so.
TEST(GpuProbe, AnswersWithoutADriver) {
  SystemGpuPeers peers;
  const std::string bus = currentGpuBusId();
  if (!cudaDeviceUsable()) {
    EXPECT_EQ(bus, "");
    EXPECT_STRNE(peers.source(), "cuda");
  }
  EXPECT_FALSE(peers.nvlink("0000:17:00.0", "0000:17:00.0"));  // a GPU has no NVLink to itself
  EXPECT_FALSE(peers.nvlink("", "0000:17:00.0"));
}

}  // namespace
}  // namespace sqz
