// Threads as ranks (as Gloo's spawnThreads): each thread forms its own
// communicator through sqzGetUniqueId/sqzCommInitRank over UCX, runs the
// body, and destroys it. Failures inside threads are reported by gtest.
#pragma once

#include <functional>
#include <string>

#include "sqz.h"

namespace sqz::test {

// Runs body(rank, comm) on n threads; each thread owns its communicator.
// The communicator is destroyed after the body unless the body set it to
// NULL itself (e.g. after sqzCommAbort).
void runRanks(int n, const std::function<void(int rank, sqzComm_t& comm)>& body);
// The same with a unique id the caller made.
void runRanksWithId(int n, const sqzUniqueId& id, const std::function<void(int rank, sqzComm_t& comm)>& body);

// Sets an environment variable for the scope (tests run one at a time).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();

 private:
  std::string name_;
  std::string old_;
  bool had_;
};

}  // namespace sqz::test
