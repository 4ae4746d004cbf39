// sqz_calibrate's GPU part (issue 10, items 2 and 5): copy curves between
// host and device (pinned and pageable host memory, both directions), within
// the device and, with two visible devices, between them; and the CUDA
// codecs' throughput. Sizes: LinkCurve::standardSizes() (1 KiB..256 MiB,
// powers of 4); each point is the median of repeats timed with CUDA events
// around one cudaMemcpyAsync on a dedicated stream, after an untimed warm-up.
// Without CUDA in the build or without a usable device, measureGpu()
// returns ran = false and the reason; it never throws for that.
#pragma once

#include <string>
#include <vector>

#include "src/tuner/codec_throughput.h"
#include "src/tuner/link_class.h"
#include "src/tuner/link_curve.h"
#include "src/tuner/profile.h"

namespace sqz {

struct GpuCurve {
  std::string name;  // "h2d_pinned", "d2h_pinned", "h2d_pageable", "d2h_pageable", "d2d", "peer_0_1"
  LinkCurve curve;
};

struct GpuCalibration {
  bool ran = false;
  std::string why;        // when !ran: what was missing
  std::string device;     // "NVIDIA H100 80GB HBM3 (0000:17:00.0)"
  std::vector<GpuCurve> curves;
  // The second device's link when a peer curve was measured: nvlink or pcie.
  bool havePeer = false;
  LinkClass peerLink = LinkClass::Pcie;
  std::string peerLinkSource;  // "nvml", "cuda" or "none"
  CodecThroughput codecs;      // Device::Gpu entries; families as the CPU ones
  std::vector<std::string> codecErrors;  // a codec the device path refused, with why

  const LinkCurve* find(const std::string& name) const;
};

// quick: 5 repeats per size and 2^24-element codec buffers; else 11 and 2^26.
GpuCalibration measureGpu(bool quick);

// Puts the measurements into p (see sqz_calibrate.cc for the mapping):
//   pcie   <- the PCIe peer curve when two devices without NVLink were
//             measured, else host staging: d2h_pinned + h2d_pinned per size
//             (a message between ranks that share a device, or whose devices
//             cannot reach each other, goes down to the host and back up)
//   nvlink <- the peer curve when NVML (or CUDA) says the two are NVLinked
//   self   <- d2d (a copy within the device)
//   codecs <- the Device::Gpu rates
void addGpuCalibration(const GpuCalibration& g, Profile* p);

// All curves (including those the profile has no slot for: the pageable
// ones and each direction alone) as JSON:
//   { "format": "sqz-gpu-copies", "version": 1, "device": "...",
//     "curves": { "h2d_pinned": [[bytes, seconds], ...], ... } }
std::string gpuCurvesJson(const GpuCalibration& g);

}  // namespace sqz
