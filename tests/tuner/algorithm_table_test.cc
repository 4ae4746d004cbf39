// The algorithm table: one entry per id, unique names, and the choices
// everything else reads from it (the tuner's candidate order per codec, the
// default algorithm of a call, the device path's).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "collectives/sparse_allreduce.h"
#include "common/error.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/algorithm_table.h"
#include "src/tuner/allreduce_shapes.h"

namespace sqz {
namespace {

CallShape call(const char* codec, size_t count, int nranks, bool multiNode = false) {
  CallShape c;
  c.codec = parseCodecSpec(codec);
  c.count = count;
  c.bytes = 4 * count;
  c.nranks = nranks;
  c.multiNode = multiNode;
  c.directMaxBytes = 32 << 10;
  return c;
}

std::string defaultFor(const char* codec, size_t count, int nranks, bool multiNode = false) {
  return defaultAlgorithm(call(codec, count, nranks, multiNode)).name;
}

TEST(AlgorithmTable, OneEntryPerIdWithAUniqueName) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(AlgorithmId::kCount); ++i) {
    const AlgorithmEntry& a = algorithmEntry(static_cast<AlgorithmId>(i));
    EXPECT_EQ(static_cast<int>(a.id), i);
    EXPECT_TRUE(names.insert(a.name).second) << a.name;
    EXPECT_EQ(findAlgorithm(a.name), &a);
    EXPECT_GT(std::string(a.description).size(), 10u) << a.name;
    if (a.offer != TunerOffer::kNever) {
      EXPECT_NE(a.shape, nullptr) << a.name << " is offered but has no cost shape";
    }
  }
  EXPECT_EQ(findAlgorithm("tree"), nullptr);
}

TEST(AlgorithmTable, TunerCandidatesPerCodecInOrder) {
  using V = std::vector<std::string>;
  EXPECT_EQ(algorithmsFor(parseCodecSpec("none")), V({"ring"}));
  EXPECT_EQ(algorithmsFor(parseCodecSpec("bf16")), V({"qring", "qa2a"}));
  EXPECT_EQ(algorithmsFor(parseCodecSpec("fp16")), V({"qring", "qa2a"}));
  EXPECT_EQ(algorithmsFor(parseCodecSpec("q4")), V({"qa2a", "qring"}));
  EXPECT_EQ(algorithmsFor(parseCodecSpec("topk:0.01")), V({"sparse_ag", "sparse_split"}));
  EXPECT_EQ(algorithmsFor(parseCodecSpec("randk:0.01")), V({"randk"}));
  // The scaled sign, rotated or not, through gather only (one encoding per
  // element, what the training matrix measured), and gather with it only.
  EXPECT_EQ(algorithmsFor(parseCodecSpec("sign")), V({"gather"}));
  EXPECT_EQ(algorithmsFor(parseCodecSpec("sign:rot")), V({"gather"}));
  std::vector<std::string> once;
  for (const AlgorithmEntry* a : offeredAlgorithms(TunerOffer::kOnce, CodecParams{})) once.push_back(a->name);
  EXPECT_EQ(once, V({"direct"}));
}

TEST(AlgorithmTable, DefaultAlgorithmOfACall) {
  // Exact: direct up to SQZ_DIRECT_MAX_BYTES on more than one rank, else ring.
  EXPECT_EQ(defaultFor("none", 8192, 4), "direct");
  EXPECT_EQ(defaultFor("none", 8193, 4), "ring");
  EXPECT_EQ(defaultFor("none", 10, 1), "ring");
  // Within one node through a mapped segment: shm up to kShmPreferredMaxBytes.
  CallShape shared = call("none", kShmPreferredMaxBytes / 4, 4);
  shared.sharedMemory = true;
  EXPECT_STREQ(defaultAlgorithm(shared).name, "shm");
  shared.count = kShmPreferredMaxBytes / 4 + 1;
  shared.bytes = 4 * shared.count;
  EXPECT_STREQ(defaultAlgorithm(shared).name, "shm_rs");
  // Then shm_rs at every size (in pieces past a large slot); the ring
  // without a segment.
  shared.count = size_t{1} << 28;
  shared.bytes = 4 * shared.count;
  EXPECT_STREQ(defaultAlgorithm(shared).name, "shm_rs");
  shared.sharedMemory = false;
  EXPECT_STREQ(defaultAlgorithm(shared).name, "ring");
  shared.count = 2;
  shared.bytes = 8;
  shared.nranks = 1;
  EXPECT_STREQ(defaultAlgorithm(shared).name, "ring");
  // Quantizers: all-to-all within a node of at most 16 ranks, else the ring.
  EXPECT_EQ(defaultFor("q4", 1 << 20, 16), "qa2a");
  EXPECT_EQ(defaultFor("q4", 1 << 20, 17), "qring");
  EXPECT_EQ(defaultFor("q4", 1 << 20, 4, true), "qring");
  EXPECT_EQ(defaultFor("bf16", 1 << 20, 4), "qring");
  EXPECT_EQ(defaultFor("randk:0.01", 1 << 20, 4), "randk");
  // The scaled sign: one encoding per element (gather) while its (N - 1)
  // payloads per rank send less than the exact ring. At block 256 a payload
  // of n = 2^20 is n / 8 + 4 n / 256 = 147456 bytes plus its header, against
  // the ring's 8 n (N - 1) / N: fp32 pays while N < 8 n / P = 56.9, fp16
  // (half the ring's bytes) while N < 28.4.
  EXPECT_EQ(defaultFor("sign", 1 << 20, 4), "gather");
  EXPECT_EQ(defaultFor("sign", 1 << 20, 4, true), "gather");
  EXPECT_EQ(defaultFor("sign", 1 << 20, 56), "gather");
  EXPECT_EQ(defaultFor("sign", 1 << 20, 57), "qring");
  EXPECT_EQ(defaultFor("sign:block=32", 1 << 20, 4), "gather");
  CallShape half = call("sign", 1 << 20, 28);
  half.bytes = 2 * half.count;
  EXPECT_STREQ(defaultAlgorithm(half).name, "gather");
  half.nranks = 29;
  EXPECT_STREQ(defaultAlgorithm(half).name, "qring");
  // A buffer so small that the payload's header outweighs the ring: qa2a.
  EXPECT_EQ(defaultFor("sign", 16, 4), "qa2a");
  EXPECT_EQ(defaultFor("q4", 1 << 20, 4), "qa2a");  // the quantizers keep qa2a
  // Top-K: the shape that sends fewer bytes.
  for (const char* spec : {"topk:0.001", "topk:0.3"}) {
    const CallShape c = call(spec, 1 << 20, 8);
    const bool split = SparseAllreduce::bytesSentPerRank(c.codec, c.count, 8, SparseAllreduce::Shape::kSplit) <
                       SparseAllreduce::bytesSentPerRank(c.codec, c.count, 8, SparseAllreduce::Shape::kAllgather);
    EXPECT_EQ(defaultFor(spec, 1 << 20, 8), split ? "sparse_split" : "sparse_ag") << spec;
  }
  EXPECT_EQ(defaultFor("topk:0.3", 1 << 20, 8), "sparse_split");
  EXPECT_EQ(defaultFor("topk:0.001", 1 << 20, 2), "sparse_ag");
}

TEST(AlgorithmTable, DeviceBuffersRunGatherRandkOrRing) {
  EXPECT_STREQ(defaultDeviceAlgorithm(parseCodecSpec("none")).name, "ring");
  EXPECT_STREQ(defaultDeviceAlgorithm(parseCodecSpec("q4")).name, "gather");
  EXPECT_STREQ(defaultDeviceAlgorithm(parseCodecSpec("topk:0.01")).name, "gather");
  EXPECT_STREQ(defaultDeviceAlgorithm(parseCodecSpec("randk:0.01")).name, "randk");
}

TEST(AlgorithmTable, WhatEachCarries) {
  EXPECT_EQ(cannotCarry(*findAlgorithm("ring"), parseCodecSpec("none")), nullptr);
  EXPECT_NE(cannotCarry(*findAlgorithm("ring"), parseCodecSpec("q4")), nullptr);
  EXPECT_EQ(cannotCarry(*findAlgorithm("qa2a"), parseCodecSpec("q1")), nullptr);
  EXPECT_NE(cannotCarry(*findAlgorithm("qa2a"), parseCodecSpec("topk:0.1")), nullptr);
  EXPECT_EQ(cannotCarry(*findAlgorithm("gather"), parseCodecSpec("topk:0.1")), nullptr);
  EXPECT_NE(cannotCarry(*findAlgorithm("gather"), parseCodecSpec("randk:0.1")), nullptr);
  EXPECT_NE(cannotCarry(*findAlgorithm("hier"), parseCodecSpec("none")), nullptr);
  try {
    hostAlgorithm("hier");
    ADD_FAILURE() << "hier ran as a flat algorithm";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzInvalidUsage);
    EXPECT_NE(std::string(e.what()).find("several nodes"), std::string::npos) << e.what();
  }
  EXPECT_NE(hostAlgorithm("qring").run, nullptr);
  EXPECT_NE(hostAlgorithm("gather").run, nullptr);  // when a plan names it
}

}  // namespace
}  // namespace sqz
