// sqz_plan: the plan the tuner would choose for one allreduce call on a
// topology, from a profile (measured, or reference links we cannot measure
// here) and a gradient's statistics, with its predicted time per call next
// to the dense ring's (issue 10, item 5).
//   sqz_plan --intra nvlink4 --inter ib-ndr --nodes 8 --gpus 8 --grad 1GiB:bf16:gaussian
//   sqz_plan --profile FILE --nodes 2 --gpus 4 --grad-file grads.f32
//   sqz_plan --write-references perf/profiles
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/error.h"
#include "common/strict_number.h"
#include "kernels/cpu_codec.h"
#include "kernels/grad_stats.h"
#include "kernels/half.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/allreduce_shapes.h"
#include "src/tuner/cost_model.h"
#include "src/tuner/reference_links.h"
#include "src/tuner/selector.h"

namespace sqz {
namespace {

struct Options {
  std::string profileFile, intra = "nvlink4", inter = "ib-ndr";
  int nodes = 8, gpus = 8, nics = -1;
  std::string device = "gpu";
  std::string grad = "1GiB:bf16:gaussian", gradFile;
  std::string levels;
  std::string writeReferences;
  int top = 8;
  size_t sample = size_t{1} << 24;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "sqz_plan: %s\n"
               "usage: sqz_plan [--profile FILE | --intra LINK --inter LINK] [--nodes M] [--gpus G]\n"
               "                [--nics-per-node K] [--device gpu|cpu] [--grad SIZE:DTYPE:DIST | --grad-file F32]\n"
               "                [--levels none,q8,...] [--top N] [--sample ELEMENTS]\n"
               "       sqz_plan --write-references DIR\n"
               "  LINK: pcie-gen4 pcie-gen5 nvlink3 nvlink4 ib-hdr ib-ndr eth-10g eth-25g eth-100g\n"
               "  DTYPE: fp32 bf16 fp16; DIST: gaussian laplace sparse (1%% of values 100x larger)\n",
               why);
  std::exit(2);
}

Options parseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--profile") o.profileFile = next();
    else if (a == "--intra") o.intra = next();
    else if (a == "--inter") o.inter = next();
    else if (a == "--nodes") o.nodes = std::atoi(next().c_str());
    else if (a == "--gpus") o.gpus = std::atoi(next().c_str());
    else if (a == "--nics-per-node") o.nics = std::atoi(next().c_str());
    else if (a == "--device") o.device = next();
    else if (a == "--grad") o.grad = next();
    else if (a == "--grad-file") o.gradFile = next();
    else if (a == "--levels") o.levels = next();
    else if (a == "--top") o.top = std::atoi(next().c_str());
    else if (a == "--sample") o.sample = static_cast<size_t>(std::atoll(next().c_str()));
    else if (a == "--write-references") o.writeReferences = next();
    else usage(("unknown argument " + a).c_str());
  }
  if (o.nodes < 1 || o.gpus < 1) usage("--nodes and --gpus must be positive");
  return o;
}

struct Gradient {
  double elements = 0;
  int elementBytes = 4;
  std::string description;
  GradStats stats;
};

// Statistics are additive: those of a sample of the distribution, scaled
// by elements / sample, stand for the whole buffer.
Gradient syntheticGradient(const std::string& spec, size_t sample) {
  std::vector<std::string> parts;
  std::stringstream in(spec);
  for (std::string p; std::getline(in, p, ':');) parts.push_back(p);
  if (parts.size() != 3) usage("--grad is SIZE:DTYPE:DIST, e.g. 1GiB:bf16:gaussian");
  uint64_t bytes = 0;
  if (!parseByteSize(parts[0].c_str(), kMaxConfigBytes, &bytes) || bytes == 0) usage("bad gradient size");
  Gradient g;
  sqzDataType_t dtype = sqzFloat32;
  if (parts[1] == "fp32") g.elementBytes = 4;
  else if (parts[1] == "bf16") { g.elementBytes = 2; dtype = sqzBfloat16; }
  else if (parts[1] == "fp16") { g.elementBytes = 2; dtype = sqzFloat16; }
  else usage("dtype must be fp32, bf16 or fp16");
  g.elements = static_cast<double>(bytes / static_cast<uint64_t>(g.elementBytes));
  const size_t n = std::min<size_t>(sample, static_cast<size_t>(g.elements));
  std::mt19937_64 rng(12345);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  std::exponential_distribution<float> expo(1e3f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    if (parts[2] == "gaussian") x[i] = normal(rng);
    else if (parts[2] == "laplace") x[i] = (uni(rng) < 0.5f ? -1.0f : 1.0f) * expo(rng);
    else if (parts[2] == "sparse") x[i] = normal(rng) * (uni(rng) < 0.01f ? 100.0f : 1.0f);
    else usage("distribution must be gaussian, laplace or sparse");
  }
  clearStats(&g.stats);
  if (dtype == sqzFloat32) {
    gradStatsCpu(x.data(), dtype, nullptr, n, &g.stats);
  } else {
    std::vector<uint16_t> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = dtype == sqzBfloat16 ? floatToBf16(x[i]) : floatToFp16(x[i]);
    gradStatsCpu(h.data(), dtype, nullptr, n, &g.stats);
  }
  const double scale = g.elements / static_cast<double>(n);
  double* d = reinterpret_cast<double*>(&g.stats);
  for (size_t i = 0; i < GradStats::kDoubles; ++i) d[i] *= scale;
  g.description = formatString("%s %s %s: %.0f elements; statistics of a %zu-element sample (seed 12345), scaled",
                               parts[0].c_str(), parts[1].c_str(), parts[2].c_str(), g.elements, n);
  return g;
}

Gradient gradientFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) usage(("cannot read " + path).c_str());
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Gradient g;
  g.elements = static_cast<double>(raw.size() / 4);
  clearStats(&g.stats);
  gradStatsCpu(raw.data(), sqzFloat32, nullptr, raw.size() / 4, &g.stats);
  g.description = formatString("%s: %.0f float32 values (captured)", path.c_str(), g.elements);
  return g;
}

std::string stageLine(const Stage& s, const CostModel& m) {
  return formatString("    %-21s %-6s codec %-14s %3d steps x %2d msgs x %10.4g B%s  transfer %9.4g ms",
                      s.role.c_str(), linkClassName(s.link), codecName(s.codec).c_str(), s.steps, s.messagesPerStep,
                      s.messageBytes,
                      s.linkSharers > 1 ? formatString(" (x%d sharing a NIC)", s.linkSharers).c_str() : "",
                      m.stageTransferSeconds(s) * 1e3);
}

void printPlan(const char* title, const ScoredCandidate& s, const CostModel& m, double denseSeconds) {
  std::printf("%s: %s\n", title, s.candidate.name().c_str());
  std::printf("  gain %.6f  predicted %.4g ms per call (encode %.4g, transfer %.4g, decode %.4g)  "
              "sent per rank %.4g MB  descent rate (gain/s) %.4g  vs dense ring %.3gx\n",
              s.gain, s.cost.seconds * 1e3, s.cost.encodeSeconds * 1e3, s.cost.transferSeconds * 1e3,
              s.cost.decodeSeconds * 1e3, s.cost.bytesSent / 1e6, s.gain / s.cost.seconds,
              denseSeconds / s.cost.seconds * s.gain);
  for (const Stage& st : s.candidate.stages) std::printf("%s\n", stageLine(st, m).c_str());
}

int writeReferences(const std::string& dir) {
  for (const ReferenceLink& l : referenceLinks()) {
    const std::string path = dir + "/" + l.name + ".json";
    saveProfile(referenceProfile(l.name), path);
    std::printf("wrote %s\n", path.c_str());
  }
  return 0;
}

int run(int argc, char** argv) {
  Options o = parseArgs(argc, argv);
  if (!o.writeReferences.empty()) return writeReferences(o.writeReferences);

  Profile profile;
  std::string profileText;
  if (!o.profileFile.empty()) {
    std::ifstream in(o.profileFile);
    if (!in) usage(("cannot read " + o.profileFile).c_str());
    std::stringstream t;
    t << in.rdbuf();
    profile = Profile::fromJson(t.str());
    profileText = o.profileFile + " (" + profile.source + ")";
  } else {
    profile = referenceProfile(o.intra, o.inter);
    profileText = o.intra + " + " + o.inter + " (" + profile.source + ")";
  }

  Topology topo;
  topo.nodes = o.nodes;
  topo.ranksPerNode = o.gpus;
  if (!parseDevice(o.device, &topo.device)) usage("--device is gpu or cpu");
  if (o.profileFile.empty()) {
    topo.intra = findReferenceLink(o.intra)->linkClass;
    topo.inter = findReferenceLink(o.inter)->linkClass;
  } else {
    topo.intra = profile.links[static_cast<int>(LinkClass::NvLink)].empty() ? LinkClass::Shm : LinkClass::NvLink;
    topo.inter = profile.links[static_cast<int>(LinkClass::Ib)].empty() ? LinkClass::Tcp : LinkClass::Ib;
  }
  // Default NICs: one per GPU on InfiniBand (rail-optimized, as DGX H100's
  // eight ConnectX-7), one per node on Ethernet.
  topo.nicsPerNode = o.nics > 0 ? o.nics : (topo.inter == LinkClass::Ib ? o.gpus : 1);

  Gradient g = o.gradFile.empty() ? syntheticGradient(o.grad, o.sample) : gradientFile(o.gradFile);
  std::vector<CodecParams> levels;
  if (o.levels.empty()) {
    levels = standardCodecLevels();
  } else {
    std::stringstream in(o.levels);
    for (std::string l; std::getline(in, l, ',');) levels.push_back(parseCodecSpec(l));
  }

  CostModel model(profile, topo.device);
  Selector selector;
  // No probes of other ranks' gradients here: the noise scale is unknown,
  // taken as 0 (the most cautious: no noise hides compression error).
  Plan plan = selector.choose(allreduceCandidates(g.elements, topo, levels, g.elementBytes), g.stats,
                              progressGains(g.stats, topo.ranks(), 0.0), model);
  const ScoredCandidate* dense = nullptr;
  for (const ScoredCandidate& s : plan.ranked)
    if (s.candidate.name() == "ring") dense = &s;

  std::printf("# sqz_plan\n");
  std::printf("profile:  %s\n", profileText.c_str());
  for (int c = 0; c < kLinkClasses; ++c)
    if (!profile.links[c].empty())
      std::printf("  %-6s %.4g us + %.4g GB/s  [%s]\n", linkClassName(static_cast<LinkClass>(c)),
                  profile.links[c].time(1) * 1e6, profile.links[c].largeMessageBandwidth() / 1e9,
                  profile.linkSources[c].c_str());
  std::printf("topology: %d nodes x %d GPUs (%d ranks); intra %s, inter %s, %d NIC(s) per node; codecs on %s "
              "(throughputs: %s)\n",
              topo.nodes, topo.ranksPerNode, topo.ranks(), linkClassName(topo.intra), linkClassName(topo.inter),
              topo.nicsPerNode, deviceName(topo.device),
              topo.device == Device::Gpu ? "estimates from HBM bandwidth, not measured"
                                         : "measured on the project's CPU, perf/results/codec_cpu.md");
  std::printf("gradient: %s\n", g.description.c_str());
  std::printf("cost model: %s\n\n", profile.costModel.describe().c_str());
  const double denseSeconds = dense ? dense->cost.seconds : 0;
  printPlan("chosen plan", plan.chosen, model, denseSeconds);
  if (dense) printPlan("dense ring (exact, flat)", *dense, model, denseSeconds);
  for (const ScoredCandidate& s : plan.ranked)
    if (s.candidate.name() == "hier/none/ring") printPlan("dense hierarchical (exact)", s, model, denseSeconds);
  std::printf("\nSQZ_TUNE to force it: allreduce:0-inf:@%s\n", plan.name().c_str());
  std::printf("\ntop %d of %zu candidates (score = gain / cost):\n%s", o.top, plan.ranked.size(),
              describeRanking(plan, static_cast<size_t>(o.top)).c_str());
  return 0;
}

}  // namespace
}  // namespace sqz

int main(int argc, char** argv) {
  try {
    return sqz::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sqz_plan: %s\n", e.what());
    return 1;
  }
}
