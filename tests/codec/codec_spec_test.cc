#include "src/codec/codec_spec.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

TEST(CodecSpec, ParsesEveryCodec) {
  CodecParams q = parseCodecSpec("q4:block=512:rn");
  EXPECT_EQ(q.kind, CodecKind::Quant);
  EXPECT_EQ(q.bits, 4);
  EXPECT_EQ(q.blockSize, 512u);
  EXPECT_FALSE(q.stochastic);
  EXPECT_TRUE(parseCodecSpec("q8").stochastic);
  EXPECT_EQ(parseCodecSpec("q1").blockSize, defaultBlockSize(1));
  CodecParams t = parseCodecSpec("topk:0.01:bf16");
  EXPECT_EQ(t.kind, CodecKind::TopK);
  EXPECT_DOUBLE_EQ(t.ratio, 0.01);
  EXPECT_EQ(t.values, ValueFormat::Bf16);
  CodecParams r = parseCodecSpec("randk:0.05:int8:rescale");
  EXPECT_EQ(r.kind, CodecKind::RandK);
  EXPECT_TRUE(r.rescale);
  EXPECT_EQ(r.values, ValueFormat::Int8);
  EXPECT_EQ(parseCodecSpec("none").kind, CodecKind::None);
  EXPECT_EQ(parseCodecSpec("bf16").kind, CodecKind::Bf16);
  EXPECT_EQ(parseCodecSpec("fp16").kind, CodecKind::Fp16);
}

TEST(CodecSpec, NameRoundTrips) {
  for (const std::string& s : test::allCodecSpecs()) {
    CodecParams p = parseCodecSpec(s);
    EXPECT_EQ(codecName(p), s) << s;
    EXPECT_TRUE(sameCodec(parseCodecSpec(codecName(p)), p)) << s;
  }
  EXPECT_EQ(codecName(parseCodecSpec("q4:block=256:sr")), "q4");
  EXPECT_EQ(codecName(parseCodecSpec("topk:0.010:fp32")), "topk:0.01");
}

TEST(CodecSpec, RejectsBadNames) {
  for (const char* bad : {"", "q3", "q4:block=7", "q4:block=0", "q4:block=131072", "q4:fast", "topk", "topk:0",
                          "topk:1.5", "topk:abc", "topk:0.1:int4", "randk:-1", "bf16:rn", "zstd", "q4:",
                          "randk:0.1:rescale:x"}) {
    try {
      parseCodecSpec(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), sqzInvalidUsage) << bad;
    }
  }
}

TEST(CodecSpec, StandardLevelsAreValid) {
  auto levels = standardCodecLevels();
  EXPECT_GE(levels.size(), 6u);
  for (const auto& p : levels) EXPECT_EQ(checkCodecParams(p), nullptr) << codecName(p);
}

}  // namespace
}  // namespace sqz
