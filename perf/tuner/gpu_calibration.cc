#include "perf/tuner/gpu_calibration.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "kernels/cuda_codec.h"
#include "src/codec/codec_spec.h"
#include "src/topology/gpu_probe.h"

#if defined(SQZ_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace sqz {

const LinkCurve* GpuCalibration::find(const std::string& name) const {
  for (const GpuCurve& c : curves)
    if (c.name == name) return &c.curve;
  return nullptr;
}

namespace {

// Per size, the sum of two curves measured at the same sizes.
LinkCurve sumCurves(const LinkCurve& a, const LinkCurve& b) {
  std::vector<LinkCurve::Point> pts;
  for (const auto& p : a.points()) pts.push_back({p.bytes, p.seconds + b.time(p.bytes)});
  return LinkCurve(std::move(pts));
}

}  // namespace

void addGpuCalibration(const GpuCalibration& g, Profile* p) {
  if (!g.ran) return;
  const LinkCurve* peer = nullptr;
  for (const GpuCurve& c : g.curves)
    if (c.name.rfind("peer_", 0) == 0) peer = &c.curve;
  const LinkCurve *h2d = g.find("h2d_pinned"), *d2h = g.find("d2h_pinned"), *d2d = g.find("d2d");
  if (peer && g.peerLink == LinkClass::NvLink)
    p->setCurve(LinkClass::NvLink, *peer, "measured: cudaMemcpyPeerAsync between two NVLinked devices (" +
                                              g.peerLinkSource + "), " + g.device);
  if (peer && g.peerLink == LinkClass::Pcie)
    p->setCurve(LinkClass::Pcie, *peer, "measured: cudaMemcpyPeerAsync between two devices over PCIe, " + g.device);
  else if (h2d && d2h)
    p->setCurve(LinkClass::Pcie, sumCurves(*d2h, *h2d),
                "measured: host staging, device-to-host plus host-to-device (pinned) per size, " + g.device);
  if (d2d) p->setCurve(LinkClass::Self, *d2d, "measured: device-to-device copy within one device, " + g.device);
  for (const auto& [key, rates] : g.codecs.rates(Device::Gpu)) p->codecs.set(Device::Gpu, key, rates);
}

std::string gpuCurvesJson(const GpuCalibration& g) {
  nlohmann::json j;
  j["format"] = "sqz-gpu-copies";
  j["version"] = 1;
  j["device"] = g.device;
  j["ran"] = g.ran;
  if (!g.ran) j["why"] = g.why;
  nlohmann::json curves = nlohmann::json::object();
  for (const GpuCurve& c : g.curves) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& p : c.curve.points()) pts.push_back({p.bytes, p.seconds});
    curves[c.name] = pts;
  }
  j["curves"] = curves;
  if (g.havePeer) j["peer_link"] = linkClassName(g.peerLink);
  for (const std::string& e : g.codecErrors) j["codec_errors"].push_back(e);
  return j.dump(1) + "\n";
}

#if !defined(SQZ_HAVE_CUDA)

GpuCalibration measureGpu(bool) {
  GpuCalibration g;
  g.why = "this build has no CUDA (SQZ_WITH_CUDA=OFF)";
  return g;
}

#else

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(sqzInternalError, "%s: %s", what, cudaGetErrorString(e));
}
#define SQZ_CUDA(call) check((call), #call)

// Device, pinned and pageable buffers that free themselves.
struct DeviceMem {
  void* p = nullptr;
  explicit DeviceMem(size_t n) { SQZ_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1))); }
  ~DeviceMem() { cudaFree(p); }
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
};
struct PinnedMem {
  void* p = nullptr;
  explicit PinnedMem(size_t n) { SQZ_CUDA(cudaMallocHost(&p, std::max<size_t>(n, 1))); }
  ~PinnedMem() { cudaFreeHost(p); }
  PinnedMem(const PinnedMem&) = delete;
  PinnedMem& operator=(const PinnedMem&) = delete;
};

// Events around work queued on one stream.
class StreamTimer {
 public:
  StreamTimer() {
    SQZ_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SQZ_CUDA(cudaEventCreate(&start_));
    SQZ_CUDA(cudaEventCreate(&stop_));
  }
  ~StreamTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
    cudaStreamDestroy(stream_);
  }
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;
  cudaStream_t stream() const { return stream_; }

  // Median seconds of `work` over `repeats` timed runs after one warm-up.
  template <class Work>
  double median(int repeats, Work&& work) {
    std::vector<double> t;
    for (int i = 0; i <= repeats; ++i) {
      SQZ_CUDA(cudaEventRecord(start_, stream_));
      work(stream_);
      SQZ_CUDA(cudaEventRecord(stop_, stream_));
      SQZ_CUDA(cudaEventSynchronize(stop_));
      float ms = 0;
      SQZ_CUDA(cudaEventElapsedTime(&ms, start_, stop_));
      if (i > 0) t.push_back(ms * 1e-3);
    }
    std::sort(t.begin(), t.end());
    return std::max(t[t.size() / 2], 1e-9);
  }

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// One copy curve at the standard sizes; a curve may not decrease, so a
// point faster than the one before it (noise) takes the earlier time.
template <class Copy>
LinkCurve copyCurve(StreamTimer& timer, int repeats, Copy&& copy) {
  std::vector<LinkCurve::Point> pts;
  for (double size : LinkCurve::standardSizes()) {
    const size_t bytes = static_cast<size_t>(size);
    double s = timer.median(repeats, [&](cudaStream_t st) { copy(bytes, st); });
    if (!pts.empty()) s = std::max(s, pts.back().seconds);
    pts.push_back({size, s});
  }
  return LinkCurve(std::move(pts));
}

void measureCodecs(StreamTimer& timer, bool quick, GpuCalibration* g) {
  const size_t n = quick ? (size_t{1} << 24) : (size_t{1} << 26);
  const int repeats = quick ? 5 : 11;
  std::vector<float> host(n);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  for (float& x : host) x = normal(rng);
  DeviceMem in(n * 4), residual(n * 4), acc(n * 4), stats(sizeof(GradStats)), err(sizeof(int));
  SQZ_CUDA(cudaMemcpy(in.p, host.data(), n * 4, cudaMemcpyHostToDevice));
  SQZ_CUDA(cudaMemset(residual.p, 0, n * 4));
  SQZ_CUDA(cudaMemset(acc.p, 0, n * 4));
  SQZ_CUDA(cudaMemset(err.p, 0, sizeof(int)));
  const double statsSeconds = timer.median(repeats, [&](cudaStream_t st) {
    SQZ_CUDA(cudaMemsetAsync(stats.p, 0, sizeof(GradStats), st));
    cudaGradStats(in.p, sqzFloat32, static_cast<float*>(residual.p), n, static_cast<GradStats*>(stats.p), st);
  });
  const double bytes = 4.0 * static_cast<double>(n);
  for (const char* name : {"none", "bf16", "q8", "q4", "q2", "q1", "topk:0.01", "randk:0.01"}) {
    const CodecParams p = parseCodecSpec(name);
    try {
      DeviceMem payload(encodedBytes(p, n)), workspace(std::max(cudaEncodeWorkspaceBytes(p, n), cudaDecodeWorkspaceBytes(p, n)));
      uint64_t step = 0;
      EncodeArgs a;
      a.input = in.p;
      a.count = n;
      a.residual = static_cast<float*>(residual.p);
      a.seed = 1;
      const double enc = timer.median(repeats, [&](cudaStream_t st) {
        a.step = step++;
        cudaEncode(p, a, payload.p, workspace.p, st);
      });
      DecodeExpect e;
      e.params = p;
      e.count = n;
      e.seed = 1;
      e.step = step - 1;  // the last payload encoded (random-K's indices depend on it)
      const double dec = timer.median(repeats, [&](cudaStream_t st) {
        cudaDecode(e, payload.p, encodedBytes(p, n), static_cast<float*>(acc.p), DecodeMode::Accumulate,
                   static_cast<int*>(err.p), workspace.p, st);
      });
      int code = 0;
      SQZ_CUDA(cudaMemcpy(&code, err.p, sizeof code, cudaMemcpyDeviceToHost));
      SQZ_REQUIRE(code == 0, sqzInternalError, "decode reported %s", cudaDecodeErrorString(code));
      g->codecs.set(Device::Gpu, codecFamily(p), {bytes / enc, bytes / dec, bytes / statsSeconds});
    } catch (const Error& ex) {
      g->codecErrors.push_back(std::string(name) + ": " + ex.what());
    }
  }
}

}  // namespace

GpuCalibration measureGpu(bool quick) {
  GpuCalibration g;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    g.why = e != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(e)
                             : std::string("no CUDA device");
    return g;
  }
  SQZ_CUDA(cudaSetDevice(0));
  cudaDeviceProp prop{};
  SQZ_CUDA(cudaGetDeviceProperties(&prop, 0));
  g.device = std::string(prop.name) + " (" + currentGpuBusId() + ")";
  const int repeats = quick ? 5 : 11;
  const size_t maxBytes = static_cast<size_t>(LinkCurve::standardSizes().back());
  {
    DeviceMem dev(maxBytes), dev2(maxBytes);
    PinnedMem pinned(maxBytes);
    std::vector<unsigned char> pageable(maxBytes, 1);
    std::memset(pinned.p, 1, maxBytes);
    SQZ_CUDA(cudaMemset(dev.p, 0, maxBytes));
    StreamTimer timer;
    auto curve = [&](const char* name, void* dst, const void* src, cudaMemcpyKind kind) {
      g.curves.push_back({name, copyCurve(timer, repeats, [&](size_t n, cudaStream_t st) {
                            SQZ_CUDA(cudaMemcpyAsync(dst, src, n, kind, st));
                          })});
    };
    curve("h2d_pinned", dev.p, pinned.p, cudaMemcpyHostToDevice);
    curve("d2h_pinned", pinned.p, dev.p, cudaMemcpyDeviceToHost);
    curve("h2d_pageable", dev.p, pageable.data(), cudaMemcpyHostToDevice);
    curve("d2h_pageable", pageable.data(), dev.p, cudaMemcpyDeviceToHost);
    curve("d2d", dev2.p, dev.p, cudaMemcpyDeviceToDevice);
    measureCodecs(timer, quick, &g);
  }
  if (devices >= 2) {
    // Device 0 -> device 1 with peer access where the pair allows it (else
    // the runtime stages through the host, which is then what is measured).
    int canAccess = 0;
    SQZ_CUDA(cudaDeviceCanAccessPeer(&canAccess, 0, 1));
    if (canAccess) {
      const cudaError_t pe = cudaDeviceEnablePeerAccess(1, 0);
      if (pe != cudaSuccess && pe != cudaErrorPeerAccessAlreadyEnabled) check(pe, "cudaDeviceEnablePeerAccess(1)");
      cudaGetLastError();  // clear "already enabled"
    }
    char bus1[32] = "";
    SQZ_CUDA(cudaDeviceGetPCIBusId(bus1, sizeof bus1, 1));
    std::string b1 = bus1;
    for (char& c : b1) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    SystemGpuPeers peers;
    g.havePeer = true;
    g.peerLink = peers.nvlink(currentGpuBusId(), b1) ? LinkClass::NvLink : LinkClass::Pcie;
    g.peerLinkSource = peers.source();
    SQZ_CUDA(cudaSetDevice(1));
    DeviceMem dst(maxBytes);
    SQZ_CUDA(cudaSetDevice(0));
    DeviceMem src(maxBytes);
    StreamTimer timer;
    g.curves.push_back({"peer_0_1", copyCurve(timer, repeats, [&](size_t n, cudaStream_t st) {
                          SQZ_CUDA(cudaMemcpyPeerAsync(dst.p, 1, src.p, 0, n, st));
                        })});
  }
  g.ran = true;
  return g;
}

#endif

}  // namespace sqz
