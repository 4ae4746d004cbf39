// One strict parser of numbers and sizes (common/strict_number.h), and what
// it means for users: a malformed SQZ_* value is an error naming the
// variable and the accepted form when the communicator is created, never a
// warning followed by a default.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/strict_number.h"
#include "harness/rank_threads.h"
#include "sqz.h"

namespace sqz::test {
namespace {

TEST(StrictNumber, Unsigned) {
  uint64_t v = 0;
  EXPECT_TRUE(parseUnsigned("0", 10, &v) && v == 0);
  EXPECT_TRUE(parseUnsigned("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "18446744073709551616", "99999999999999999999",
                          "1.0", "1e3"})
    EXPECT_FALSE(parseUnsigned(bad, UINT64_MAX, &v)) << bad;
  EXPECT_FALSE(parseUnsigned("11", 10, &v));
  EXPECT_FALSE(parseUnsigned(nullptr, 10, &v));
}

TEST(StrictNumber, ByteSize) {
  uint64_t v = 0;
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (Case c : {Case{"0", 0}, Case{"512", 512}, Case{"64k", 65536}, Case{"64K", 65536}, Case{"64KiB", 65536},
                 Case{"64kb", 65536}, Case{"1M", 1 << 20}, Case{"2g", 2ull << 30}, Case{"1T", 1ull << 40},
                 Case{"7B", 7}, Case{"7b", 7}}) {
    EXPECT_TRUE(parseByteSize(c.text, UINT64_MAX, &v)) << c.text;
    EXPECT_EQ(v, c.bytes) << c.text;
  }
  for (const char* bad : {"", "-5", "+5", "k", "64 k", "64kk", "64Ki", "64KiBB", "1.5M", "64x", "99999999999999999999",
                          "17179869184G", "16777216T", "inf"})
    EXPECT_FALSE(parseByteSize(bad, UINT64_MAX, &v)) << bad;
  EXPECT_FALSE(parseByteSize("2k", 2047, &v));
}

TEST(StrictNumber, Decimal) {
  double v = 0;
  struct Case {
    const char* text;
    double value;
  };
  for (Case c : {Case{"30", 30}, Case{"0.5", 0.5}, Case{".25", 0.25}, Case{"1.", 1}, Case{"1e3", 1000},
                 Case{"1E-3", 1e-3}, Case{"2.5e+2", 250}, Case{"0", 0}}) {
    EXPECT_TRUE(parseDecimal(c.text, 1e6, &v)) << c.text;
    EXPECT_EQ(v, c.value) << c.text;
  }
  for (const char* bad : {"", ".", "-1", "+1", "inf", "nan", "INF", "1e30", "1e400", "0x1p3", " 1", "1 ", "1e",
                          "1e+", "e3", "1,5", "30s"})
    EXPECT_FALSE(parseDecimal(bad, 1e6, &v)) << bad;
}

// Each malformed value makes communicator creation fail with
// sqzInvalidArgument and a message naming the variable and what it expects.
TEST(StrictEnvironment, MalformedValuesAreErrorsAtCreation) {
  struct Case {
    const char* name;
    const char* value;
  };
  for (Case c : {Case{"SQZ_TIMEOUT", "inf"}, Case{"SQZ_TIMEOUT", "1e30"}, Case{"SQZ_TIMEOUT", "0"},
                 Case{"SQZ_TIMEOUT", "-5"}, Case{"SQZ_TIMEOUT", "30s"}, Case{"SQZ_MIN_BYTES", "99999999999999999999"},
                 Case{"SQZ_MIN_BYTES", "-1"}, Case{"SQZ_MIN_BYTES", "64kx"}, Case{"SQZ_CHUNK_BYTES", "-4096"},
                 Case{"SQZ_DIRECT_MAX_BYTES", "1.5M"}, Case{"SQZ_STATS_EVERY_MAX", "-3"}, Case{"SQZ_SEED", "-1"},
                 Case{"SQZ_SEED", "12abc"}, Case{"SQZ_TUNE_MODE", "eager"}, Case{"SQZ_COMPRESSION", "zstd"},
                 Case{"SQZ_COMPRESSION", "topk:inf"}, Case{"SQZ_MOMENTUM", "1"}, Case{"SQZ_MOMENTUM", "0.9x"},
                 Case{"SQZ_AUTO_CODECS", "q2,zstd"}, Case{"SQZ_SHM", "2"}, Case{"SQZ_SHM", "yes"},
                 Case{"SQZ_OPTIMIZER", "lamb"}, Case{"SQZ_OPTIMIZER", "Adam"}}) {
    ScopedEnv env(c.name, c.value);
    sqzUniqueId id;
    sqzComm_t comm = nullptr;
    sqzResult_t r = sqzGetUniqueId(&id);
    if (r == sqzSuccess) r = sqzCommInitRank(&comm, 1, id, 0);
    const std::string why = sqzGetLastError(nullptr);
    EXPECT_EQ(r, sqzInvalidArgument) << c.name << "=" << c.value << ": " << why;
    EXPECT_NE(why.find(std::string(c.name) + "=" + c.value), std::string::npos) << why;
    if (comm) sqzCommDestroy(comm);
  }
}

// SQZ_ROOT's port is read by the same parser: trailing junk is an error.
TEST(StrictEnvironment, RootPortWithTrailingJunkIsAnError) {
  ScopedEnv rank("RANK", "0"), size("WORLD_SIZE", "1");
  for (const char* root : {"127.0.0.1:29501abc", "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:"}) {
    ScopedEnv env("SQZ_ROOT", root);
    sqzComm_t comm = nullptr;
    const sqzResult_t r = sqzCommInitFromEnv(&comm);
    const std::string why = sqzGetLastError(nullptr);
    EXPECT_EQ(r, sqzInvalidArgument) << root << ": " << why;
    EXPECT_NE(why.find("SQZ_ROOT"), std::string::npos) << why;
    if (comm) sqzCommDestroy(comm);
  }
}

}  // namespace
}  // namespace sqz::test
