// Checks the profile `mpirun -np N sqz_calibrate` wrote (see
// calibrate_processes_test.sh): a communicator of N ranks on this node looks
// it up by the fingerprint AutoTuner computes (topologyFingerprint of every
// rank's node id, host memory) through loadProfile, the same call it makes
// at its first tuned allreduce; it must load, be measured, and hold the
// curves and throughputs a calibration writes.
//   calibrated_profile_check N
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "src/topology/node_id.h"
#include "src/tuner/profile.h"
#include "src/tuner/topology_fingerprint.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sqz;
  if (argc != 2 || std::atoi(argv[1]) < 2) {
    std::fprintf(stderr, "usage: calibrated_profile_check NRANKS\n");
    return 2;
  }
  const int n = std::atoi(argv[1]);
  setenv("SQZ_CALIBRATE", "off", 1);
  const std::string fp = topologyFingerprint(std::vector<std::string>(n, localNodeId()), false);
  ProfileLoad load = loadProfile(fp);
  expect(load.status == ProfileLoad::Status::Loaded,
         "profile for " + fp + " loads from " + load.path + " (" + profileLoadStatusName(load.status) + " " +
             load.why + ")");
  if (load.status != ProfileLoad::Status::Loaded) return 1;
  const Profile& p = load.profile;
  expect(p.fingerprint == fp, "fingerprint " + p.fingerprint);
  expect(p.source == kSourceMeasured, "source " + p.source);
  const LinkCurve& shm = p.links[static_cast<int>(LinkClass::Shm)];
  expect(shm.points().size() >= 3, "shm curve has " + std::to_string(shm.points().size()) + " points");
  expect(!shm.empty() && shm.points().front().bytes == 1024, "shm curve starts at 1 KiB");
  expect(p.linkSources[static_cast<int>(LinkClass::Shm)].find("processes") != std::string::npos,
         "shm curve measured between processes: " + p.linkSources[static_cast<int>(LinkClass::Shm)]);
  expect(p.links[static_cast<int>(LinkClass::Tcp)].empty() && p.links[static_cast<int>(LinkClass::Ib)].empty(),
         "no network curve for ranks on one node");
  expect(p.callOverheadSeconds > 0 && p.callOverheadSeconds < 0.1,
         "call overhead " + std::to_string(p.callOverheadSeconds) + " s");
  const auto& cpu = p.codecs.rates(Device::Cpu);
  expect(cpu.count("q4") == 1 && cpu.at("q4").encode > 0 && cpu.at("q4").decode > 0 && cpu.at("q4").stats > 0,
         "CPU q4 throughput measured");
  expect(cpu.size() == 10, "10 CPU codec families, got " + std::to_string(cpu.size()));
  // The scaled signs are priced at this machine's rates, not the defaults.
  expect(cpu.count("sign") == 1 && cpu.count("sign:rot") == 1 && cpu.at("sign:rot").encode > 0 &&
             cpu.at("sign:rot").decode > 0,
         "CPU sign and sign:rot throughput measured");
  // A communicator of another size has another fingerprint: this file is not its.
  const std::string other = topologyFingerprint(std::vector<std::string>(n + 1, localNodeId()), false);
  ProfileLoad foreign = loadProfile(other);
  expect(foreign.status != ProfileLoad::Status::Loaded, "not loaded for " + other);
  return failures == 0 ? 0 : 1;
}
