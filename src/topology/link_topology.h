// Which link joins two ranks (issue 10, item 1): the LinkClass a message
// between them crosses. Each rank describes its own place (RankPlacement:
// node, GPU, whether its node's network is RDMA as UCX would use it); the
// placements are gathered, and every rank classifies every pair from the
// same gathered data, so all ranks agree.
//
// The decisions are pure functions of injected inputs (unit-tested); the
// probes that fill those inputs from this machine are separate
// (probeNetworkEvidence here, src/topology/gpu_probe.h for CUDA and NVML).
#pragma once

#include <string>
#include <vector>

#include "src/tuner/link_class.h"

namespace sqz {

// One port of an RDMA device as /sys/class/infiniband shows it.
struct RdmaPort {
  std::string device;     // "mlx5_0"
  int port = 1;
  bool active = false;    // ports/<port>/state reads "4: ACTIVE"
  std::string linkLayer;  // ports/<port>/link_layer: "InfiniBand" or "Ethernet" (RoCE)
};

// What decides whether UCX would carry inter-node traffic over an IB
// transport (rc/ud/dc over verbs or mlx5) rather than TCP.
struct NetworkEvidence {
  std::vector<RdmaPort> ports;  // every port under /sys/class/infiniband
  bool ucxTlsSet = false;
  std::string ucxTls;           // UCX_TLS, e.g. "tcp,sm", "^ib", "rc,sm", "all"
  bool ucxNetDevicesSet = false;
  std::string ucxNetDevices;    // UCX_NET_DEVICES, e.g. "mlx5_0:1", "eth0", "all"
};

// True when UCX would use an RDMA transport for the network: some port is
// ACTIVE, UCX_TLS (when set) enables an IB transport, and UCX_NET_DEVICES
// (when set) names one of the active ports ("dev:port", or "all"). RoCE
// ports count as RDMA too: UCX runs the same rc/ud/dc transports over them.
// UCX_TLS: a comma list of transports or aliases, or "^list" for all but
// those. IB transports: rc_verbs (rc_v), rc_mlx5 (rc_x), ud_verbs (ud_v),
// ud_mlx5 (ud_x), dc_mlx5 (dc_x), selected also by their family (rc, ud,
// dc) or the alias "ib"; "all" enables them too. A "^list" allows IB while
// one of them stays out of it ("^rc" leaves ud and dc). `why` (optional) receives the reason in words.
bool ucxUsesRdma(const NetworkEvidence& e, std::string* why = nullptr);

// Reads `sysfsRoot` (normally /sys/class/infiniband; absent without RDMA
// hardware) and the UCX_TLS / UCX_NET_DEVICES environment.
NetworkEvidence probeNetworkEvidence(const std::string& sysfsRoot = "/sys/class/infiniband");

// Where one rank is. Gathered from all ranks (pack / unpack).
struct RankPlacement {
  std::string nodeId;    // localNodeId()
  std::string gpuBusId;  // PCI bus id of the rank's CUDA device ("0000:17:00.0"); "" for host memory
  bool rdma = false;     // ucxUsesRdma() on the rank's node

  std::string pack() const;
  // Throws sqz::Error(sqzInvalidUsage) on a malformed string.
  static RankPlacement unpack(const std::string& text);
};

// Whether two GPUs (by PCI bus id) reach each other directly: NVLink (NVML's
// NVLink P2P status, or CUDA's peer attributes when NVML is absent), or
// PCIe peer access. Injected so the classification is testable.
class GpuPeers {
 public:
  virtual ~GpuPeers() = default;
  virtual bool nvlink(const std::string& busA, const std::string& busB) = 0;
};

// The link class between ranks a and b (indices into `ranks`):
//   a == b                          self
//   same node, either without GPU   shm (host memory, shared-memory transport)
//   same node, same GPU             pcie (ranks sharing one device stage through the host)
//   same node, two GPUs             nvlink when gpu->nvlink() says so, else pcie
//   different nodes                 ib when both nodes' placements say rdma, else tcp
// `gpu` may be null (no NVML/CUDA): GPU pairs are then pcie.
LinkClass classifyLink(const std::vector<RankPlacement>& ranks, int a, int b, GpuPeers* gpu);

// The classes a hierarchical plan needs: `intra` joins ranks of one node
// (the slowest pair found on any node; shm when every node has one rank),
// `inter` joins nodes (the slowest pair across nodes; tcp when there is one
// node). Slowest by typical bandwidth (the defaults of defaultProfile()):
// tcp, then ib, shm, pcie, self, nvlink.
struct LinkClasses {
  LinkClass intra = LinkClass::Shm;
  LinkClass inter = LinkClass::Tcp;
};
LinkClasses classifyTopology(const std::vector<RankPlacement>& ranks, GpuPeers* gpu);

}  // namespace sqz
