#include "harness/rank_threads.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <vector>

namespace sqz::test {

void runRanks(int n, const std::function<void(int rank, sqzComm_t& comm)>& body) {
  sqzUniqueId id;
  ASSERT_EQ(sqzGetUniqueId(&id), sqzSuccess) << sqzGetLastError(nullptr);
  runRanksWithId(n, id, body);
}

void runRanksWithId(int n, const sqzUniqueId& id, const std::function<void(int rank, sqzComm_t& comm)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      sqzComm_t comm = nullptr;
      sqzResult_t res = sqzCommInitRank(&comm, n, id, r);
      EXPECT_EQ(res, sqzSuccess) << "rank " << r << ": " << sqzGetLastError(nullptr);
      if (res != sqzSuccess) return;
      body(r, comm);
      if (comm) {
        EXPECT_EQ(sqzCommDestroy(comm), sqzSuccess);
      }
    });
  }
  for (auto& t : threads) t.join();
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  const char* old = std::getenv(name);
  had_ = old != nullptr;
  if (had_) old_ = old;
  if (value) setenv(name, value, 1);
  else unsetenv(name);
}

ScopedEnv::~ScopedEnv() {
  if (had_) setenv(name_.c_str(), old_.c_str(), 1);
  else unsetenv(name_.c_str());
}

}  // namespace sqz::test
