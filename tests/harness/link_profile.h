// A tuner profile for tests of `auto`: its shared-memory link (the one
// threads as ranks use) made as fast or as slow as the test needs.
#pragma once

#include <string>

namespace sqz::test {

// Writes a profile (for any topology) whose shared-memory link has this
// latency and bandwidth to a fresh temporary file; returns its path (the
// caller removes it). Set SQZ_PROFILE to it and SQZ_CALIBRATE=off.
std::string writeLinkProfile(double latencySeconds, double bytesPerSecond);

}  // namespace sqz::test
