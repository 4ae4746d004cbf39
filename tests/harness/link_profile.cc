#include "harness/link_profile.h"

#include <unistd.h>

#include <cstdlib>

#include "src/tuner/link_curve.h"
#include "src/tuner/profile.h"

namespace sqz::test {

std::string writeLinkProfile(double latencySeconds, double bytesPerSecond) {
  Profile p = defaultProfile();
  p.fingerprint = "any";
  p.source = "test";
  p.setCurve(LinkClass::Shm, LinkCurve::fromLatencyBandwidth(latencySeconds, bytesPerSecond), "test");
  char path[] = "/tmp/sqz-test-profile-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  saveProfile(p, path);
  return path;
}

}  // namespace sqz::test
