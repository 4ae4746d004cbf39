// sqz_calibrate: measures this machine's cost profile and writes it as JSON
// (src/tuner/profile.h) where communicators look for it.
//
//   sqz_calibrate [--quick | --full] [--ranks N] [--link CLASS] [--gpu | --no-gpu] [--out FILE]
//   mpirun -np P sqz_calibrate [--quick | --full] [--gpu | --no-gpu] [--out FILE]
//
// Threads (no launcher, or --ranks): N ranks are threads of this process,
// each with its own UCX transport over loopback; the curve is stored under
// --link (default shm).
//
// Processes (under mpirun, or --processes): each rank is a process with its
// own UCX transport, as in a communicator; MPI only spreads the addresses.
// Every rank describes its place (node id, RDMA network as UCX would use it:
// src/topology/link_topology.h), and the links are measured the way the
// collectives use them, concurrently:
//   intra: every node's ranks run ring steps among themselves at once (the
//          intra-node stage of a hierarchical plan); stored under the class
//          the classification gives (shm for host memory);
//   inter: the ranks with the same local index on every node run ring steps
//          at once (the inter-node stage; several ranks of a node share its
//          NIC as they do then); stored under ib or tcp;
//   call overhead: the small all-to-all round of every call.
// Launched through perf/netbench/testbed.sh (`testbed.sh run --ns N
// --ranks-per-ns K -- sqz_calibrate ...`) each node is a network namespace
// joined by shaped links: the network curve is then the shaped link's.
// The profile is keyed by the same fingerprint a communicator of these ranks
// computes, so it loads it instead of calibrating.
//
// GPU (--gpu, the default; --no-gpu skips it): where a device is usable, rank 0 also measures
// host<->device and device copies and the CUDA codecs (gpu_calibration.h);
// the profile is then keyed as a GPU job's, and every curve, including
// those the profile has no slot for, goes to FILE with .json replaced by
// .gpu-copies.json. Without a usable device it says so and goes on.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "perf/tuner/gpu_calibration.h"
#include "src/topology/gpu_probe.h"
#include "src/topology/link_topology.h"
#include "src/topology/node_id.h"
#include "src/tuner/calibration.h"
#include "src/tuner/profile.h"
#include "src/tuner/topology_fingerprint.h"
#include "transport/group_transport.h"
#include "transport/ucx_transport.h"

namespace sqz {
namespace {

struct Options {
  bool quick = true;
  int ranks = 2;
  bool ranksGiven = false;
  bool processes = false;
  std::string out;
  std::string linkName = "shm";
  bool linkGiven = false;
  bool gpu = true;  // measure the GPU part when a device is usable
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "sqz_calibrate: %s\nusage: sqz_calibrate [--quick | --full] [--ranks N] [--link CLASS] "
               "[--gpu | --no-gpu] [--out FILE]\n       mpirun -np P sqz_calibrate [--quick | --full] "
               "[--gpu | --no-gpu] [--out FILE]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  o.quick = calibrateMode() != CalibrateMode::Full;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--full") o.quick = false;
    else if (a == "--ranks" && i + 1 < argc) o.ranks = std::atoi(argv[++i]), o.ranksGiven = true;
    else if (a == "--processes") o.processes = true;
    else if (a == "--link" && i + 1 < argc) o.linkName = argv[++i], o.linkGiven = true;
    else if ((a == "--out" || a == "-o") && i + 1 < argc) o.out = argv[++i];
    else if (a == "--gpu") o.gpu = true;
    else if (a == "--no-gpu") o.gpu = false;
    else usage(("unknown argument " + a).c_str());
  }
  const char* worldSize = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (worldSize && std::atoi(worldSize) > 1) o.processes = true;
  if (o.processes && (o.ranksGiven || o.linkGiven))
    usage("--ranks and --link are for thread ranks; under mpirun the ranks and their links are the launched ones");
  if (!o.processes && o.ranks < 2) usage("--ranks must be at least 2");
  return o;
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// GPU part, on one rank. Without a usable device it says so and the
// profile is a host one (exit status 0: a GPU-less machine is no error).
GpuCalibration gpuPart(const Options& o) {
  GpuCalibration g;
  if (!o.gpu) {
    g.why = "--no-gpu";
    return g;
  }
  g = measureGpu(o.quick);
  if (!g.ran) std::printf("# GPU: skipped, %s\n", g.why.c_str());
  return g;
}

void writeGpuSidecar(const GpuCalibration& g, const std::string& profileFile) {
  if (!g.ran) return;
  std::string path = profileFile;
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0) path.resize(path.size() - 5);
  path += ".gpu-copies.json";
  std::ofstream(path) << gpuCurvesJson(g);
  std::printf("wrote %s\n", path.c_str());
}

void printCurve(const char* title, const LinkCurve& c) {
  std::printf("# %s\n%12s %12s %12s\n", title, "bytes", "time_us", "GB/s");
  for (const auto& pt : c.points())
    std::printf("%12.0f %12.2f %12.3f\n", pt.bytes, pt.seconds * 1e6, pt.bytes / pt.seconds / 1e9);
}

void printReport(const Profile& p, const GpuCalibration& g, const std::string& out) {
  for (int i = 0; i < kLinkClasses; ++i)
    if (!p.links[i].empty())
      printCurve((std::string("link ") + linkClassName(static_cast<LinkClass>(i)) + ": " + p.linkSources[i]).c_str(),
                 p.links[i]);
  for (const GpuCurve& c : g.curves) printCurve(("gpu " + c.name).c_str(), c.curve);
  for (const std::string& e : g.codecErrors) std::printf("# GPU codec skipped: %s\n", e.c_str());
  for (Device d : {Device::Cpu, Device::Gpu}) {
    if (p.codecs.rates(d).empty()) continue;
    std::printf("%-8s %12s %12s %12s  (%s, GB/s of fp32 input%s)\n", "codec", "encode+EF", "decode+acc", "stats",
                deviceName(d), d == Device::Cpu ? ", one core" : "");
    for (const auto& [key, r] : p.codecs.rates(d))
      std::printf("%-8s %12.3f %12.3f %12.3f\n", key.c_str(), r.encode / 1e9, r.decode / 1e9, r.stats / 1e9);
  }
  std::printf("call overhead (agreement round): %.2f us\n", p.callOverheadSeconds * 1e6);
  std::printf("fingerprint %s\nwrote %s\n", p.fingerprint.c_str(), out.c_str());
}

int runThreads(const Options& o) {
  LinkClass link;
  if (!parseLinkClass(o.linkName, &link)) usage("unknown link class");
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<UcxTransport>> transports;
  std::vector<std::vector<uint8_t>> addresses;
  for (int r = 0; r < o.ranks; ++r) {
    transports.push_back(std::make_unique<UcxTransport>(r, o.ranks));
    addresses.push_back(transports.back()->localAddress());
  }
  const std::vector<bool> sameNode(o.ranks, true);
  for (auto& t : transports) t->connect(addresses, sameNode, o.ranks);
  std::vector<LinkCurve> curves(o.ranks);
  std::vector<double> rounds(o.ranks);
  std::vector<std::string> errors(o.ranks);
  std::vector<std::thread> threads;
  CalibrationOptions co;
  co.quick = o.quick;
  for (int r = 0; r < o.ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        curves[r] = measureRingStepCurve(*transports[r], co);
        rounds[r] = measureCallRoundSeconds(*transports[r], co);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int r = 0; r < o.ranks; ++r)
    if (!errors[r].empty()) fail(sqzInternalError, "rank %d: %s", r, errors[r].c_str());
  const double linkSeconds = secondsSince(start);

  GpuCalibration g = gpuPart(o);
  Profile p;
  p.fingerprint = topologyFingerprint(std::vector<std::string>(o.ranks, localNodeId()), g.ran);
  p.source = kSourceMeasured;
  p.note = formatString("sqz_calibrate %s: %d thread ranks on one node", o.quick ? "--quick" : "--full", o.ranks);
  p.setCurve(link, curves[0], formatString("measured: ring step between %d thread ranks (UCX)", o.ranks));
  p.callOverheadSeconds = rounds[0];
  p.codecs = measureCpuCodecThroughput(o.quick);
  addGpuCalibration(g, &p);
  const std::string out = o.out.empty() ? profilePath(p.fingerprint) : o.out;
  saveProfile(p, out);
  writeGpuSidecar(g, out);
  std::printf("# sqz_calibrate (%s): %d thread ranks, %.3f s (links %.3f s)\n", o.quick ? "quick" : "full",
              o.ranks, secondsSince(start), linkSeconds);
  printReport(p, g, out);
  return 0;
}

// Variable-length blobs from every rank, in rank order.
std::vector<std::string> allgather(const std::string& mine, int nranks) {
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(nranks), offsets(nranks);
  MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < nranks; ++r) offsets[r] = total, total += lens[r];
  std::string all(static_cast<size_t>(total), '\0');
  MPI_Allgatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), offsets.data(), MPI_BYTE, MPI_COMM_WORLD);
  std::vector<std::string> out(nranks);
  for (int r = 0; r < nranks; ++r) out[r] = all.substr(offsets[r], lens[r]);
  return out;
}

void writeProcessProfile(const Options& o, int nranks, size_t nodes, size_t nodeRanks, size_t crossRanks,
                         size_t maxPerNode, const LinkClasses& classes, const std::string& rdmaWhy,
                         const std::vector<std::string>& nodeIds, const LinkCurve& intra, const LinkCurve& inter,
                         double round, const CodecThroughput& codecs, std::chrono::steady_clock::time_point start,
                         double linkSeconds);

int runProcesses(const Options& o, int rank, int nranks) {
  const auto start = std::chrono::steady_clock::now();
  NetworkEvidence evidence = probeNetworkEvidence();
  std::string rdmaWhy;
  RankPlacement me;
  me.nodeId = localNodeId();
  me.rdma = ucxUsesRdma(evidence, &rdmaWhy);
  // The UCX transport moves host memory: its links are classified as host
  // ranks' (shm inside a node); the GPU's own links are measured below.
  UcxTransport transport(rank, nranks);
  const std::vector<uint8_t>& addr = transport.localAddress();
  std::vector<std::string> addrs = allgather(std::string(addr.begin(), addr.end()), nranks);
  std::vector<std::string> packed = allgather(me.pack(), nranks);
  std::vector<RankPlacement> places;
  std::vector<std::string> nodeIds;
  for (const std::string& s : packed) places.push_back(RankPlacement::unpack(s)), nodeIds.push_back(places.back().nodeId);
  std::vector<std::vector<uint8_t>> addresses;
  std::vector<bool> sameNode;
  for (int r = 0; r < nranks; ++r) {
    addresses.emplace_back(addrs[r].begin(), addrs[r].end());
    sameNode.push_back(nodeIds[r] == me.nodeId);
  }
  const std::vector<std::string> machines = allgather(localMachineId(), nranks);
  const int ranksOnThisMachine = static_cast<int>(std::count(machines.begin(), machines.end(), machines[rank]));
  transport.connect(addresses, sameNode, ranksOnThisMachine);

  // Nodes in order of their first rank; each rank's local index.
  std::vector<std::string> order;
  std::map<std::string, std::vector<int>> byNode;
  for (int r = 0; r < nranks; ++r) {
    if (byNode[nodeIds[r]].empty()) order.push_back(nodeIds[r]);
    byNode[nodeIds[r]].push_back(r);
  }
  const std::vector<int>& myNode = byNode[me.nodeId];
  const int local = static_cast<int>(std::find(myNode.begin(), myNode.end(), rank) - myNode.begin());
  std::vector<int> cross;  // same local index on every node that has one
  for (const std::string& id : order)
    if (static_cast<int>(byNode[id].size()) > local) cross.push_back(byNode[id][local]);
  size_t maxPerNode = 0;
  for (const auto& kv : byNode) maxPerNode = std::max(maxPerNode, kv.second.size());
  const LinkClasses classes = classifyTopology(places, nullptr);

  CalibrationOptions co;
  co.quick = o.quick;
  LinkCurve intra, inter;
  // Each phase is collective over its groups; ranks outside a group of two
  // or more sit it out, and the all-ranks round between phases keeps one
  // phase's traffic out of the other's timings.
  if (maxPerNode > 1 && myNode.size() > 1) {
    GroupTransport g(transport, myNode);
    co.tagSeq = tags::kCalibrationSeq;
    intra = measureRingStepCurve(g, co);
  }
  co.tagSeq = tags::kCalibrationSeq + 1 * tags::kPlanRunSeqs;
  measureCallRoundSeconds(transport, co);
  if (order.size() > 1 && cross.size() > 1) {
    GroupTransport g(transport, cross);
    co.tagSeq = tags::kCalibrationSeq + 2 * tags::kPlanRunSeqs;
    inter = measureRingStepCurve(g, co);
  }
  co.tagSeq = tags::kCalibrationSeq + 3 * tags::kPlanRunSeqs;
  const double round = measureCallRoundSeconds(transport, co);
  const double linkSeconds = secondsSince(start);
  // Every rank measures the codecs at once, as every rank encodes at once in
  // a call (ranks sharing cores slow each other down); rank 0's count.
  CodecThroughput codecs = measureCpuCodecThroughput(o.quick);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) writeProcessProfile(o, nranks, order.size(), myNode.size(), cross.size(), maxPerNode, classes,
                                     rdmaWhy, nodeIds, intra, inter, round, codecs, start, linkSeconds);
  // Every transport stays up until rank 0 has written the profile.
  MPI_Barrier(MPI_COMM_WORLD);
  return 0;
}

void writeProcessProfile(const Options& o, int nranks, size_t nodes, size_t nodeRanks, size_t crossRanks,
                         size_t maxPerNode, const LinkClasses& classes, const std::string& rdmaWhy,
                         const std::vector<std::string>& nodeIds, const LinkCurve& intra, const LinkCurve& inter,
                         double round, const CodecThroughput& codecs, std::chrono::steady_clock::time_point start,
                         double linkSeconds) {
  GpuCalibration g = gpuPart(o);
  Profile p;
  p.fingerprint = topologyFingerprint(nodeIds, g.ran);
  p.source = kSourceMeasured;
  p.note = formatString("sqz_calibrate %s: %d process ranks on %zu node(s) (mpirun); network: %s",
                        o.quick ? "--quick" : "--full", nranks, nodes, rdmaWhy.c_str());
  // Rank 0 is local index 0 of the first node: its curves are those of the
  // first node's group and of the group that joins every node.
  if (!intra.empty())
    p.setCurve(classes.intra, intra,
               formatString("measured: ring step among the %zu ranks of each node at once (UCX, processes)",
                            nodeRanks));
  if (!inter.empty())
    p.setCurve(classes.inter, inter,
               formatString("measured: ring step across %zu nodes, %zu such rings at once (UCX, processes)",
                            crossRanks, maxPerNode));
  p.callOverheadSeconds = round;
  p.codecs = codecs;
  addGpuCalibration(g, &p);
  const std::string out = o.out.empty() ? profilePath(p.fingerprint) : o.out;
  saveProfile(p, out);
  writeGpuSidecar(g, out);
  std::printf("# sqz_calibrate (%s): %d process ranks, %zu node(s), intra %s, inter %s (%s), %.3f s (links %.3f s)\n",
              o.quick ? "quick" : "full", nranks, nodes, linkClassName(classes.intra),
              linkClassName(classes.inter), rdmaWhy.c_str(), secondsSince(start), linkSeconds);
  if (intra.empty()) std::printf("# one rank on rank 0's node: no intra-node curve\n");
  if (inter.empty()) std::printf("# one node: no network curve\n");
  printReport(p, g, out);
}

}  // namespace
}  // namespace sqz

int main(int argc, char** argv) {
  sqz::Options o = sqz::parse(argc, argv);
  if (!o.processes) {
    try {
      return sqz::runThreads(o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sqz_calibrate: %s\n", e.what());
      return 1;
    }
  }
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  int rc = 0;
  try {
    if (nranks < 2) sqz::fail(sqzInvalidUsage, "--processes needs at least 2 ranks (mpirun -np 2 or more)");
    rc = sqz::runProcesses(o, rank, nranks);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sqz_calibrate: rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
