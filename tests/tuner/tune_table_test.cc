#include "src/tuner/algorithm_table.h"
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
