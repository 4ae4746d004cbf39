#include "src/tuner/reference_links.h"

#include "common/error.h"

namespace sqz {
namespace {

// Ethernet carries TCP payload at 1448 of every 1538 bytes on the wire
// (1500-byte MTU; Ethernet preamble, header, FCS and gap 38 bytes; IP 20,
// TCP with timestamps 32): 94.1% of the line rate.
constexpr double kTcpEfficiency = 1448.0 / 1538.0;

std::vector<ReferenceLink> makeLinks() {
  return {
      {"pcie-gen4", LinkClass::Pcie, 31.5e9, 2e-6, "PCI Express 4.0 x16, host<->device",
       "PCI-SIG PCIe 4.0 base specification: 16 GT/s per lane, 128b/130b encoding = 1.97 GB/s per lane, "
       "31.5 GB/s per direction for x16 (table in https://hpc-notes.pages.dev/reference/pcie). Latency 2 us: "
       "assumed (order of one DMA round), not a published figure."},
      {"pcie-gen5", LinkClass::Pcie, 63.0e9, 2e-6, "PCI Express 5.0 x16, host<->device",
       "PCI-SIG PCIe 5.0: 32 GT/s per lane, 128b/130b = 3.94 GB/s per lane, 63.0 GB/s per direction for x16 "
       "(https://hpc-notes.pages.dev/reference/pcie). Latency 2 us: assumed, as for gen4."},
      {"nvlink3", LinkClass::NvLink, 300e9, 3e-6, "NVLink 3 (A100 SXM, NVSwitch), per GPU",
       "NVIDIA: an A100 supports up to 12 third-generation NVLink links, 600 GB/s total "
       "(https://www.nvidia.com/de-de/data-center/nvlink/); 600 GB/s is both directions, so 300 GB/s per "
       "direction. Latency 3 us: assumed (kernel launch plus NVSwitch hop), not a published figure."},
      {"nvlink4", LinkClass::NvLink, 450e9, 3e-6, "NVLink 4 (H100 SXM, NVSwitch), per GPU",
       "NVIDIA Hopper: 18 fourth-generation NVLink links, 900 GB/s total bidirectional "
       "(https://wikimili.com/en/NVLink citing NVIDIA; https://ubytelink.com/blog/"
       "what-is-nvidia-h100-interconnect-a-technical-deep-dive.html), so 450 GB/s per direction. "
       "Latency 3 us: assumed, as for nvlink3."},
      {"ib-hdr", LinkClass::Ib, 25e9, 1.5e-6, "InfiniBand HDR 200 Gb/s (ConnectX-6), one port",
       "200 Gb/s = 25 GB/s per direction; ConnectX-6 HDR adapters: 'sub-600 nanosecond latency' "
       "(https://lenovopress.lenovo.com/lp1195, https://docs.nvidia.com/networking/display/ConnectX6EN/"
       "Introduction). Latency 1.5 us: 0.6 us per adapter x 2 plus an assumed 0.3 us switch hop."},
      {"ib-ndr", LinkClass::Ib, 50e9, 1.5e-6, "InfiniBand NDR 400 Gb/s (ConnectX-7), one port",
       "400 Gb/s = 50 GB/s per direction (NVIDIA ConnectX-7 user manual, "
       "https://docs.nvidia.com/networking/display/ConnectX7VPI/Introduction); Quantum-2 switch port-to-port "
       "latency < 400 ns (https://systemspecbase.com/infiniband-ndr-400g-throughput-and-switch-port-density/). "
       "Latency 1.5 us: assumed as for HDR (adapter latency of ConnectX-7 not found published)."},
      {"eth-10g", LinkClass::Tcp, 10e9 / 8 * kTcpEfficiency, 25e-6, "10 Gigabit Ethernet, kernel TCP",
       "IEEE 802.3 (https://www.ieee802.org/3/), 802.3ae line rate 10 Gb/s = 1.25 GB/s, times 94.1% TCP payload efficiency (1448 of 1538 bytes "
       "per frame at MTU 1500). Latency 25 us: assumed one-way small-message kernel TCP latency, not a "
       "published figure (varies with NIC, interrupt coalescing and kernel)."},
      {"eth-25g", LinkClass::Tcp, 25e9 / 8 * kTcpEfficiency, 20e-6, "25 Gigabit Ethernet, kernel TCP",
       "IEEE 802.3 (https://www.ieee802.org/3/), 802.3by line rate 25 Gb/s = 3.125 GB/s, times 94.1% TCP payload efficiency. Latency 20 us: "
       "assumed, as for 10 GbE."},
      {"eth-100g", LinkClass::Tcp, 100e9 / 8 * kTcpEfficiency, 15e-6, "100 Gigabit Ethernet, kernel TCP",
       "IEEE 802.3 (https://www.ieee802.org/3/), 802.3ba/bj line rate 100 Gb/s = 12.5 GB/s, times 94.1% TCP payload efficiency (one kernel TCP "
       "stream rarely reaches it; several do). Latency 15 us: assumed, as for 10 GbE."},
  };
}

}  // namespace

const std::vector<ReferenceLink>& referenceLinks() {
  static const std::vector<ReferenceLink> links = makeLinks();
  return links;
}

const ReferenceLink* findReferenceLink(const std::string& name) {
  for (const ReferenceLink& l : referenceLinks())
    if (name == l.name) return &l;
  return nullptr;
}

namespace {

void addLink(Profile* p, const std::string& name) {
  const ReferenceLink* l = findReferenceLink(name);
  if (!l) {
    std::string names;
    for (const ReferenceLink& r : referenceLinks()) names += std::string(names.empty() ? "" : ", ") + r.name;
    fail(sqzInvalidUsage, "unknown reference link '%s' (%s)", name.c_str(), names.c_str());
  }
  p->setCurve(l->linkClass, LinkCurve::fromLatencyBandwidth(l->latencySeconds, l->bytesPerSecond),
              std::string(kSourceReference) + ": " + l->description + ". " + l->source);
  p->note += (p->note.empty() ? "" : "; ") + std::string(l->name) + ": " + l->description;
}

Profile baseReference() {
  Profile p;
  p.fingerprint = "any";
  p.source = kSourceReference;
  p.codecs = defaultThroughput();
  return p;
}

}  // namespace

Profile referenceProfile(const std::string& name) {
  Profile p = baseReference();
  addLink(&p, name);
  return p;
}

Profile referenceProfile(const std::string& intraName, const std::string& interName) {
  Profile p = baseReference();
  addLink(&p, intraName);
  addLink(&p, interName);
  return p;
}

}  // namespace sqz
