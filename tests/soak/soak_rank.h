// One rank of the soak (tests/soak/sqz_soak.cc): forms a communicator from
// the environment, runs the drawn calls until the time is up, checks the
// results it is due to check, samples its resident memory and open
// descriptors each time the communicator is down, and says whether they
// stayed flat.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sqz::soak {

// What a rank process is told on its command line.
struct RankOptions {
  int rank = 0;
  double seconds = 60;
  uint64_t seed = 0;
  bool fault = false;      // a peer will be killed: a failure of a dead peer, in time, is the expected end
  bool judgeFlat = true;   // false: a run too short to judge memory and descriptors
  std::string inject;      // test-only: "wrong" (results corrupted before the check), "leak", "fd"
  size_t maxCount = size_t{1} << 24;  // the largest call, in elements
};

// Exit codes of a rank process.
enum RankExit : int {
  kRankDone = 0,
  kRankWrong = 3,          // a result failed its check
  kRankNotFlat = 4,        // memory or descriptors grew
  kRankUnjudged = 5,       // too few samples after the warm-up to judge them
  kRankPeerFailed = 42,    // fault runs: a call failed on the dead peer within SQZ_TIMEOUT
  kRankPeerFailedLate = 43,  // ... but took longer than SQZ_TIMEOUT
  kRankCallFailed = 10,    // + the sqzResult_t of a call that failed otherwise
};

int runRank(const RankOptions& options);

}  // namespace sqz::soak
