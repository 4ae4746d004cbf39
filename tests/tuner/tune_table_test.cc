#include "src/tuner/algorithm_table.h"
#include "src/tuner/link_curve.h"
#include "src/tuner/tune_table.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace sqz {
namespace {

TEST(TuneTable, ParsesTheUccStyleExample) {
  TuneTable t = TuneTable::parse("allreduce:0-64k:@ring#allreduce:64k-inf:@qa2a:q4");
  ASSERT_EQ(t.entries().size(), 2u);
  EXPECT_EQ(t.entries()[0].maxBytes, 65536u);
  EXPECT_EQ(t.entries()[1].maxBytes, UINT64_MAX);
  auto small = t.lookup("allreduce", MemoryType::Host, 65535);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->target(), "ring");
  auto big = t.lookup("allreduce", MemoryType::Cuda, 65536);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->target(), "qa2a:q4");
  EXPECT_FALSE(big->automatic);
  EXPECT_EQ(big->plan.codec.bits, 4);
}

TEST(TuneTable, MemoryTypeAutoHierarchicalAndLastEntryWins) {
  TuneTable t = TuneTable::parse(
      "allreduce:0-inf:@auto#allreduce:1M-1G:cuda:@hier/none/qa2a:q2#allreduce:4K-8k:host:@sparse_ag:topk:0.01");
  EXPECT_TRUE(t.lookup("allreduce", MemoryType::Host, 2 << 20)->automatic);
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Cuda, 2 << 20)->target(), "hier/none/qa2a:q2");
  EXPECT_TRUE(t.lookup("allreduce", MemoryType::Cuda, 1ull << 30)->automatic);  // 1G is exclusive
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Host, 5000)->target(), "sparse_ag:topk:0.01");
  EXPECT_TRUE(t.lookup("allreduce", MemoryType::Cuda, 5000)->automatic);
  EXPECT_FALSE(t.lookup("broadcast", MemoryType::Host, 5000));
  TuneTable gap = TuneTable::parse("allreduce:1k-2k:@ring");
  EXPECT_FALSE(gap.lookup("allreduce", MemoryType::Host, 100));
}

TEST(TuneTable, PrintsCanonicallyAndRoundTrips) {
  const std::string canonical =
      "allreduce:0-32k:@direct#allreduce:32k-64k:@ring#allreduce:64k-inf:@auto#"
      "allreduce:1M-3G:cuda:@hier/bf16/qring:q8#allreduce:1000-1025:host:@randk:randk:0.05#"
      "allreduce:0-inf:@qa2a:q4:block=512:rn";
  EXPECT_EQ(TuneTable::parse(canonical).toString(), canonical);
  // Other spellings print canonically, and that text parses to the same table.
  TuneTable t = TuneTable::parse("allreduce:0-65536:@ring#allreduce:64K-inf:@auto");
  EXPECT_EQ(t.toString(), "allreduce:0-64k:@ring#allreduce:64k-inf:@auto");
  EXPECT_EQ(TuneTable::parse(t.toString()).toString(), t.toString());
  EXPECT_EQ(TuneTable::parse(TuneTable::defaultText()).toString(), TuneTable::defaultText());
}

// The defaults force shm exactly where the default choice prefers it.
TEST(TuneTable, DefaultsSendSmallCallsThroughSharedMemoryUpToItsPreferredSize) {
  const TuneTable t = TuneTable::parse(TuneTable::defaultText());
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Host, 8)->target(), "shm");
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Host, kShmPreferredMaxBytes - 1)->target(), "shm");
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Host, kShmPreferredMaxBytes + 1)->target(), "shm_rs");
}

// The default's selector bound moves; shm and shm_rs keep their ranges
// below it. 64 KiB is the table the library always had.
TEST(TuneTable, DefaultsHandCallsToTheSelectorFromTheBoundGiven) {
  EXPECT_EQ(TuneTable::defaultText(), "allreduce:0-12k:@shm#allreduce:12k-64k:@shm_rs#allreduce:64k-inf:@auto");
  EXPECT_EQ(TuneTable::defaultText(32 << 10),
            "allreduce:0-12k:@shm#allreduce:12k-32k:@shm_rs#allreduce:32k-inf:@auto");
  EXPECT_EQ(TuneTable::defaultText(12 << 10), "allreduce:0-12k:@shm#allreduce:12k-inf:@auto");
  EXPECT_EQ(TuneTable::defaultText(4 << 10), "allreduce:0-4k:@shm#allreduce:4k-inf:@auto");
  const TuneTable t = TuneTable::parse(TuneTable::defaultText(4 << 10));
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Host, 4095)->target(), "shm");
  EXPECT_EQ(t.lookup("allreduce", MemoryType::Host, 4096)->target(), "auto");
}

// The bound from a network's curve, on curves this machine measured
// (perf/results/train14/profile_*.json, the tcp link) and the defaults'.
TEST(TuneTable, SelectorBoundIsTheNetworksHalfBandwidthSizeWithinAPageAnd64KiB) {
  // 10 Mbit/s: 2048 bytes already take 17x the 1 KiB message; at least 4 KiB.
  EXPECT_EQ(TuneTable::autoFromBytesFor(LinkCurve({{1024, 1.17e-5}, {4096, 3.498e-3}, {16384, 1.386e-2}})), 4096u);
  // 1 Gbit/s: 2 x 8.687e-6 is passed at 8192 (sqrt(9.775e-6 * 1.374e-4) =
  // 3.7e-5) and not at 4096 (9.775e-6).
  EXPECT_EQ(TuneTable::autoFromBytesFor(LinkCurve({{1024, 8.687e-6}, {4096, 9.775e-6}, {16384, 1.374e-4}})), 8192u);
  // Loopback TCP: at 32 KiB sqrt(4.311e-5 * 8.243e-5) = 5.96e-5 < 2 x
  // 3.082e-5; 64 KiB is the cap anyway.
  EXPECT_EQ(TuneTable::autoFromBytesFor(
                LinkCurve({{1024, 3.082e-5}, {4096, 3.328e-5}, {16384, 4.311e-5}, {65536, 8.243e-5}})),
            65536u);
  // The built-in TCP default (30 us, 1.25 GB/s) keeps the 64 KiB table.
  EXPECT_EQ(TuneTable::autoFromBytesFor(LinkCurve::fromLatencyBandwidth(30e-6, 1.25e9)), 65536u);
  // At 100 Mbit/s: 4096 bytes take 3.58e-4 s, over 2 x 1.12e-4.
  EXPECT_EQ(TuneTable::autoFromBytesFor(LinkCurve::fromLatencyBandwidth(30e-6, 1.25e7)), 4096u);
}

TEST(TuneTable, RejectsMalformedStringsWithTheReason) {
  const char* bad[] = {
      "",                                  // empty
      "allreduce:0-64k:ring",              // no '@'
      "allreduce:0-64k@ring",              // '@' not after ':'
      "broadcast:0-64k:@ring",             // unknown collective
      "allreduce:64k:@ring",               // range without '-'
      "allreduce:x-64k:@ring",             // bad lower bound
      "allreduce:0-64q:@ring",             // bad suffix
      "allreduce:64k-64k:@ring",           // empty range
      "allreduce:1M-64k:@ring",            // inverted range
      "allreduce:inf-64k:@ring",           // inf as lower bound
      "allreduce:0-64k:gpu:@ring",         // unknown memory type
      "allreduce:0-64k:host:x:@ring",      // too many fields
      "allreduce:0-64k:@",                 // empty target
      "allreduce:0-64k:@tree",             // unknown algorithm
      "allreduce:0-64k:@qa2a:topk:0.1",    // codec the algorithm cannot carry
      "allreduce:0-64k:@ring:q4",          // ring is exact
      "allreduce:0-64k:@qa2a:q3",          // unknown codec
      "allreduce:0-64k:@hier/q4/qa2a:q4",  // intra codec must be none/bf16/fp16
      "allreduce:0-64k:@hier/none",        // hier without its inter plan
      "allreduce:0-64k:@ring#",            // stray '#'
      "allreduce:0-99999999999999999999k:@ring",  // overflow
  };
  for (const char* s : bad) {
    try {
      TuneTable::parse(s);
      ADD_FAILURE() << "accepted: " << s;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), sqzInvalidUsage) << s;
      EXPECT_GT(std::string(e.what()).size(), 10u) << s;
    }
  }
}

TEST(PlanName, RoundTripsEveryRegistryShape) {
  for (const char* name : {"ring", "direct", "qa2a:q8", "qring:bf16", "qring:fp16", "sparse_ag:topk:0.001:bf16",
                           "randk:randk:0.01:rescale", "hier/none/qa2a:q1", "hier/bf16/ring"}) {
    EXPECT_EQ(planName(parsePlanName(name)), name);
  }
  EXPECT_TRUE(isKnownAlgorithm("qa2a"));
  EXPECT_FALSE(isKnownAlgorithm("tree"));
}

}  // namespace
}  // namespace sqz
