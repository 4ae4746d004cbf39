// The exact collectives beside allreduce, on their success path, threads as
// ranks: sqzBroadcast (every type, every root, sizes from 0 to past a
// chunk, in place and out of place), sqzAllGather (every type, the same
// sizes, in place too) and sqzBarrier (nobody leaves before the last rank arrives), each
// bitwise against what the ranks sent. Their failure paths are in
// test_errors.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/dtype.h"
#include "harness/rank_threads.h"
#include "harness/reference.h"

namespace sqz::test {
namespace {

const std::vector<size_t> kCounts{0, 1, 7, 1023, 200003};

// Every rank's data for every type and size, made once: [type][size][rank].
using Data = std::vector<std::vector<std::vector<std::vector<unsigned char>>>>;
Data makeData(int n, uint64_t seed) {
  Data d(sqzNumTypes, std::vector<std::vector<std::vector<unsigned char>>>(kCounts.size()));
  for (int t = 0; t < sqzNumTypes; ++t)
    for (size_t k = 0; k < kCounts.size(); ++k)
      for (int r = 0; r < n; ++r)
        d[t][k].push_back(makeInput(static_cast<sqzDataType_t>(t), sqzSum, r, kCounts[k], seed + k));
  return d;
}

class BroadcastRanks : public ::testing::TestWithParam<int> {};

TEST_P(BroadcastRanks, EveryTypeRootAndSize) {
  const int n = GetParam();
  const Data data = makeData(n, 11);
  for (int root = 0; root < n; ++root) {
    runRanks(n, [&](int rank, sqzComm_t& comm) {
      for (int t = 0; t < sqzNumTypes; ++t) {
        const sqzDataType_t type = static_cast<sqzDataType_t>(t);
        const size_t elem = dataTypeSize(type);
        for (size_t k = 0; k < kCounts.size(); ++k) {
          const size_t count = kCounts[k];
          const std::vector<unsigned char>& want = data[t][k][root];
          std::vector<unsigned char> mine = data[t][k][rank];
          std::vector<unsigned char> out(count * elem + 1, 0xab);
          const bool inPlace = (k + rank) % 2 == 0;
          void* recv = inPlace ? static_cast<void*>(mine.data()) : static_cast<void*>(out.data());
          ASSERT_EQ(sqzBroadcast(mine.data(), recv, count, type, root, comm, nullptr), sqzSuccess)
              << sqzGetLastError(comm);
          if (count > 0) {
            EXPECT_EQ(std::memcmp(recv, want.data(), count * elem), 0)
                << dataTypeName(type) << " root " << root << " count " << count << " rank " << rank;
          }
          if (!inPlace) {
            EXPECT_EQ(out[count * elem], 0xab) << "wrote past the buffer";
          }
        }
      }
    });
  }
}

class AllGatherRanks : public ::testing::TestWithParam<int> {};

TEST_P(AllGatherRanks, EveryTypeAndSize) {
  const int n = GetParam();
  const Data data = makeData(n, 23);
  runRanks(n, [&](int rank, sqzComm_t& comm) {
    for (int t = 0; t < sqzNumTypes; ++t) {
      const sqzDataType_t type = static_cast<sqzDataType_t>(t);
      const size_t elem = dataTypeSize(type);
      for (size_t k = 0; k < kCounts.size(); ++k) {
        const size_t count = kCounts[k];
        const std::vector<unsigned char>& mine = data[t][k][rank];
        std::vector<unsigned char> out(n * count * elem + 1, 0xab);
        // In place (NCCL's convention: sendbuff is this rank's slot of recvbuff) on odd sizes.
        const bool inPlace = k % 2 == 1;
        unsigned char* slot = out.data() + rank * count * elem;
        if (inPlace && count > 0) std::memcpy(slot, mine.data(), count * elem);
        const void* send = inPlace || count == 0 ? static_cast<const void*>(slot) : mine.data();
        ASSERT_EQ(sqzAllGather(send, out.data(), count, type, comm, nullptr), sqzSuccess)
            << sqzGetLastError(comm);
        for (int r = 0; r < n && count > 0; ++r) {
          EXPECT_EQ(std::memcmp(out.data() + r * count * elem, data[t][k][r].data(), count * elem), 0)
              << dataTypeName(type) << " count " << count << ": block of rank " << r << " on rank " << rank;
        }
        EXPECT_EQ(out[n * count * elem], 0xab) << "wrote past the buffer";
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, BroadcastRanks, ::testing::Values(1, 2, 3, 5),
                         [](const auto& info) { return "n" + std::to_string(info.param); });
INSTANTIATE_TEST_SUITE_P(Ranks, AllGatherRanks, ::testing::Values(1, 2, 3, 5),
                         [](const auto& info) { return "n" + std::to_string(info.param); });

// Rank r arrives r x 100 ms late; nobody may leave before the last arrived,
// barrier after barrier; the communicator keeps working after them.
TEST(Barrier, NobodyLeavesBeforeTheLastArrives) {
  const int n = 4;
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> arrived{0};
    std::vector<int> seenOnExit(n, -1);
    runRanks(n, [&](int rank, sqzComm_t& comm) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * ((rank + round) % n)));
      arrived.fetch_add(1);
      ASSERT_EQ(sqzBarrier(comm), sqzSuccess) << sqzGetLastError(comm);
      seenOnExit[rank] = arrived.load();
      int32_t v = 1;
      ASSERT_EQ(sqzAllReduce(&v, &v, 1, sqzInt32, sqzSum, comm, nullptr), sqzSuccess);
      EXPECT_EQ(v, n);
    });
    for (int r = 0; r < n; ++r) EXPECT_EQ(seenOnExit[r], n) << "round " << round << ": rank " << r << " left early";
  }
}

TEST(Barrier, OneRankReturnsAtOnce) {
  runRanks(1, [&](int, sqzComm_t& comm) {
    for (int i = 0; i < 3; ++i) EXPECT_EQ(sqzBarrier(comm), sqzSuccess);
  });
}

}  // namespace
}  // namespace sqz::test
