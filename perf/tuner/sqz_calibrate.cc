// sqz_calibrate: measures this machine's cost profile and writes it as JSON
// (src/tuner/profile.h) where communicators look for it.
//   sqz_calibrate [--quick | --full] [--ranks N] [--link shm|tcp|...] [--out FILE]
// Ranks are threads of this process, each with its own UCX transport over
// loopback (shared memory, or TCP with UCX_TLS=tcp); every rank sends to
// its right neighbour and receives from its left one at once, as a ring
// step does. Rank 0's curve is the one written. The codec throughputs are
// measured on this CPU. Not done yet: ranks as processes under mpirun
// across nodes (the network curve), and the GPU's PCIe / device-copy
// curves.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "src/topology/node_id.h"
#include "src/tuner/calibration.h"
#include "src/tuner/profile.h"
#include "src/tuner/topology_fingerprint.h"
#include "transport/ucx_transport.h"

namespace sqz {
namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "sqz_calibrate: %s\nusage: sqz_calibrate [--quick | --full] [--ranks N] [--link CLASS] [--out FILE]\n",
               why);
  std::exit(2);
}

int run(int argc, char** argv) {
  bool quick = calibrateMode() != CalibrateMode::Full;
  int ranks = 2;
  std::string out, linkName = "shm";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--full") quick = false;
    else if (a == "--ranks" && i + 1 < argc) ranks = std::atoi(argv[++i]);
    else if (a == "--link" && i + 1 < argc) linkName = argv[++i];
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else usage(("unknown argument " + a).c_str());
  }
  LinkClass link;
  if (!parseLinkClass(linkName, &link)) usage("unknown link class");
  if (ranks < 2) usage("--ranks must be at least 2");
  const auto start = std::chrono::steady_clock::now();

  std::vector<std::unique_ptr<UcxTransport>> transports;
  std::vector<std::vector<uint8_t>> addresses;
  for (int r = 0; r < ranks; ++r) {
    transports.push_back(std::make_unique<UcxTransport>(r, ranks));
    addresses.push_back(transports.back()->localAddress());
  }
  const std::vector<bool> sameNode(ranks, true);
  for (auto& t : transports) t->connect(addresses, sameNode);
  std::vector<LinkCurve> curves(ranks);
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  CalibrationOptions o;
  o.quick = quick;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        curves[r] = measureRingStepCurve(*transports[r], o);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int r = 0; r < ranks; ++r)
    if (!errors[r].empty()) fail(sqzInternalError, "rank %d: %s", r, errors[r].c_str());
  const double linkSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Profile p;
  p.fingerprint = topologyFingerprint(std::vector<std::string>(ranks, localNodeId()), false);
  p.source = kSourceMeasured;
  p.note = formatString("sqz_calibrate %s: %d thread ranks on one node", quick ? "--quick" : "--full", ranks);
  p.setCurve(link, curves[0], formatString("measured: ring step between %d thread ranks (UCX)", ranks));
  p.codecs = measureCpuCodecThroughput(quick);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (out.empty()) out = profilePath(p.fingerprint);
  saveProfile(p, out);

  std::printf("# sqz_calibrate (%s): %d ranks, link class %s, %.3f s (links %.3f s)\n", quick ? "quick" : "full",
              ranks, linkClassName(link), total, linkSeconds);
  std::printf("%12s %12s %12s\n", "bytes", "time_us", "GB/s");
  for (const auto& pt : curves[0].points())
    std::printf("%12.0f %12.2f %12.3f\n", pt.bytes, pt.seconds * 1e6, pt.bytes / pt.seconds / 1e9);
  std::printf("%-8s %12s %12s %12s  (GB/s of fp32 input, one core)\n", "codec", "encode+EF", "decode+acc", "stats");
  for (const auto& [key, r] : p.codecs.rates(Device::Cpu))
    std::printf("%-8s %12.3f %12.3f %12.3f\n", key.c_str(), r.encode / 1e9, r.decode / 1e9, r.stats / 1e9);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace
}  // namespace sqz

int main(int argc, char** argv) {
  try {
    return sqz::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sqz_calibrate: %s\n", e.what());
    return 1;
  }
}
