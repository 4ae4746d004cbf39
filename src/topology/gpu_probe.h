// This machine's GPUs as the link classification needs them: the PCI bus
// id of the current CUDA device, and whether two GPUs are joined by NVLink.
// NVML is loaded at run time (dlopen "libnvidia-ml.so.1"), so nothing needs
// it at link time; without a driver, without NVML or in a build without
// CUDA every query answers "no GPU" / "not NVLink" instead of failing.
#pragma once

#include <string>

#include "src/topology/link_topology.h"

namespace sqz {

// True when the build has CUDA and cudaGetDeviceCount finds a device.
bool cudaDeviceUsable();

// PCI bus id of the current CUDA device ("0000:17:00.0", lower case), or ""
// when no device is usable.
std::string currentGpuBusId();

// NVLink between two GPUs: NVML's P2P status for the NVLink capability
// (nvmlDeviceGetP2PStatus with NVML_P2P_CAPS_INDEX_NVLINK), which sees every
// GPU of the node whatever CUDA_VISIBLE_DEVICES says. Without NVML, CUDA's
// own view: both devices visible to this process, peer access supported
// (cudaDeviceGetP2PAttribute) and native atomics supported, which PCIe peer
// access does not offer on current hardware (a heuristic: NVML is the real answer).
class SystemGpuPeers final : public GpuPeers {
 public:
  SystemGpuPeers();
  ~SystemGpuPeers() override;
  SystemGpuPeers(const SystemGpuPeers&) = delete;
  SystemGpuPeers& operator=(const SystemGpuPeers&) = delete;

  bool nvlink(const std::string& busA, const std::string& busB) override;
  // Which source answers: "nvml", "cuda" or "none".
  const char* source() const;

 private:
  struct Nvml;
  Nvml* nvml_ = nullptr;  // null when NVML could not be loaded or initialized
};

}  // namespace sqz
