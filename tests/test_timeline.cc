// SQZ_TIMELINE: every rank writes a valid Chrome-trace JSON array with each
// allreduce (plan, bytes, phase times) and the events callers add.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/rank_threads.h"

namespace sqz::test {
namespace {

TEST(Timeline, EachRankWritesItsCallsAndCallerEvents) {
  char dir[] = "/tmp/sqz-timeline-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/trace.json";
  {
    ScopedEnv timeline("SQZ_TIMELINE", path.c_str());
    ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
    runRanks(2, [&](int rank, sqzComm_t& comm) {
      std::vector<float> g(5000, 1.0f + rank);
      ASSERT_EQ(sqzAllReduceEx(g.data(), g.data(), g.size(), sqzFloat32, sqzSum, "q8", nullptr, comm, nullptr),
                sqzSuccess);
      ASSERT_EQ(sqzAllReduce(g.data(), g.data(), 10, sqzFloat32, sqzSum, comm, nullptr), sqzSuccess);
      EXPECT_EQ(sqzTimelineRecord(comm, "fusion", "py", 2, 1.5, 0.25, "{\"tensors\":3}"), sqzSuccess);
      EXPECT_EQ(sqzTimelineRecord(comm, "bad", "py", 2, 1.5, 0.25, "[not json"), sqzInvalidArgument);
    });
  }
  for (int rank = 0; rank < 2; ++rank) {
    std::string file = std::string(dir) + "/trace.rank" + std::to_string(rank) + ".json";
    std::ifstream in(file);
    ASSERT_TRUE(in.good()) << file;
    nlohmann::json events = nlohmann::json::parse(in);  // throws (fails the test) on a malformed file
    ASSERT_TRUE(events.is_array());
    int allreduces = 0, fusions = 0;
    for (const auto& e : events) {
      if (e.value("name", "") == "allreduce") {
        ++allreduces;
        EXPECT_EQ(e["pid"], rank);
        EXPECT_TRUE(e["args"].contains("plan"));
        EXPECT_GE(e["dur"].get<double>(), 0.0);
      }
      if (e.value("name", "") == "fusion") {
        ++fusions;
        EXPECT_EQ(e["args"]["tensors"], 3);
        EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 1.5e6);
      }
    }
    EXPECT_EQ(allreduces, 2);
    EXPECT_EQ(fusions, 1);
    std::remove(file.c_str());
  }
  rmdir(dir);
  // Without SQZ_TIMELINE there is nothing to record into.
  runRanks(1, [&](int, sqzComm_t& comm) {
    EXPECT_EQ(sqzTimelineRecord(comm, "x", "y", 0, 0, 0, nullptr), sqzInvalidUsage);
  });
}

}  // namespace
}  // namespace sqz::test
