// Malformed payloads are rejected before anything is written.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "common/error.h"
#include "kernels/payload_checks.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

struct Encoded {
  CodecParams p;
  EncodeArgs a;
  std::vector<float> x;
  std::vector<uint8_t> payload;
};

Encoded make(const std::string& spec, size_t n = 1000) {
  Encoded e;
  e.p = parseCodecSpec(spec);
  e.x = test::normalInput(n, 3);
  e.a.input = e.x.data();
  e.a.count = n;
  e.a.chunkOffset = 4096;
  e.a.seed = 17;
  e.payload = test::encodeToVector(e.p, e.a);
  return e;
}

// Decoding must throw sqzInvalidUsage and leave `out` untouched.
void expectRejected(const DecodeExpect& x, const std::vector<uint8_t>& payload, size_t bytes, const char* what) {
  std::vector<float> out(x.count + 1, -7.0f);
  try {
    decodeCpu(x, payload.data(), bytes, out.data(), DecodeMode::Accumulate);
    ADD_FAILURE() << "accepted: " << what;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzInvalidUsage) << what;
  }
  for (float v : out) ASSERT_EQ(v, -7.0f) << what << ": wrote before rejecting";
}

template <class T>
void poke(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

TEST(WireFormat, HeaderFieldsAreChecked) {
  for (const char* spec : {"none", "bf16", "q4", "q1:rn", "sign", "topk:0.05", "topk:0.05:int8", "randk:0.1:bf16"}) {
    Encoded e = make(spec);
    const DecodeExpect x = test::expectFor(e.p, e.a);
    expectRejected(x, e.payload, e.payload.size() - 1, "truncated by one byte");
    expectRejected(x, e.payload, 20, "truncated inside the header");
    expectRejected(x, e.payload, 0, "empty");
    auto bad = e.payload;
    poke<uint32_t>(bad, offsetof(WireHeader, magic), 0xdeadbeef);
    expectRejected(x, bad, bad.size(), "wrong magic");
    bad = e.payload;
    poke<uint16_t>(bad, offsetof(WireHeader, version), 99);
    expectRejected(x, bad, bad.size(), "wrong version");
    bad = e.payload;
    poke<uint8_t>(bad, offsetof(WireHeader, codec), 42);
    expectRejected(x, bad, bad.size(), "unknown codec");
    bad = e.payload;
    poke<uint8_t>(bad, offsetof(WireHeader, level), 0x13);
    expectRejected(x, bad, bad.size(), "wrong level");
    bad = e.payload;
    poke<uint64_t>(bad, offsetof(WireHeader, count), 999);
    expectRejected(x, bad, bad.size(), "count field mismatch");
    bad = e.payload;
    poke<uint64_t>(bad, offsetof(WireHeader, chunkOffset), 0);
    expectRejected(x, bad, bad.size(), "offset field mismatch");
    bad = e.payload;
    poke<uint64_t>(bad, offsetof(WireHeader, payloadBytes), 1u << 30);
    expectRejected(x, bad, bad.size(), "payload size field");
    bad = e.payload;
    poke<uint32_t>(bad, offsetof(WireHeader, statsBytes), sizeof(GradStats));
    expectRejected(x, bad, bad.size(), "stats block claimed");

    DecodeExpect other = x;
    other.count = 1001;
    expectRejected(other, e.payload, e.payload.size(), "receiver expects another count");
    other = x;
    other.chunkOffset = 0;
    expectRejected(other, e.payload, e.payload.size(), "receiver expects another offset");
    other = x;
    other.withStats = true;
    expectRejected(other, e.payload, e.payload.size(), "receiver expects statistics");
    other = x;
    other.params = parseCodecSpec(std::string(spec) == "q4" ? "q8" : "q4");
    expectRejected(other, e.payload, e.payload.size(), "receiver expects another codec");
  }
}

TEST(WireFormat, TopKIndicesAreChecked) {
  Encoded e = make("topk:0.05");
  const DecodeExpect x = test::expectFor(e.p, e.a);
  const PayloadLayout l = payloadLayout(e.p, e.a.count, false);
  auto bad = e.payload;
  poke<uint32_t>(bad, l.params + 4 * (l.selected - 1), 1000);
  expectRejected(x, bad, bad.size(), "index == count");
  bad = e.payload;
  poke<uint32_t>(bad, l.params + 4 * 3, 0xffffffffu);
  expectRejected(x, bad, bad.size(), "index far out of range");
  bad = e.payload;
  uint32_t first;
  std::memcpy(&first, bad.data() + l.params, 4);
  poke<uint32_t>(bad, l.params + 4, first);
  expectRejected(x, bad, bad.size(), "duplicate index");
}

// The section checks both decoders share (kernels/payload_checks.h; the
// GPU's validateKernel runs them over the whole payload before any write).
TEST(WireFormat, SharedSectionChecks) {
  EXPECT_TRUE(blockParamsOk(-1.5f, 0.25f));
  EXPECT_TRUE(blockParamsOk(0.0f, 0.0f));
  EXPECT_TRUE(blockParamsOk(0.0f, -0.0f));
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    EXPECT_FALSE(blockParamsOk(bad, 1.0f));
    EXPECT_FALSE(blockParamsOk(0.0f, bad));
    EXPECT_FALSE(valueScaleOk(bad));
  }
  EXPECT_FALSE(blockParamsOk(0.0f, -1.0f));
  EXPECT_FALSE(valueScaleOk(-1e-30f));
  EXPECT_TRUE(valueScaleOk(0.0f));
  const uint32_t idx[] = {0, 3, 3, 2, 9, 10};
  EXPECT_TRUE(sparseIndexOk(idx, 0, 10));
  EXPECT_TRUE(sparseIndexOk(idx, 1, 10));
  EXPECT_FALSE(sparseIndexOk(idx, 2, 10));  // duplicate
  EXPECT_FALSE(sparseIndexOk(idx, 3, 10));  // decreasing
  EXPECT_TRUE(sparseIndexOk(idx, 4, 10));
  EXPECT_FALSE(sparseIndexOk(idx, 5, 10));  // == count
  EXPECT_TRUE(sparseIndexOk(idx, 5, 11));
}

TEST(WireFormat, NonFiniteScalesAreRejected) {
  Encoded q = make("q8");
  const PayloadLayout lq = payloadLayout(q.p, q.a.count, false);
  auto bad = q.payload;
  poke<float>(bad, lq.params + 8 * 2 + 4, NAN);
  expectRejected(test::expectFor(q.p, q.a), bad, bad.size(), "NaN block delta");
  bad = q.payload;
  poke<float>(bad, lq.params + 8 * 3, INFINITY);
  expectRejected(test::expectFor(q.p, q.a), bad, bad.size(), "Inf block offset");
  bad = q.payload;
  poke<float>(bad, lq.params + 4, -1.0f);
  expectRejected(test::expectFor(q.p, q.a), bad, bad.size(), "negative delta");
  Encoded t = make("topk:0.1:int8");
  const PayloadLayout lt = payloadLayout(t.p, t.a.count, false);
  bad = t.payload;
  poke<float>(bad, lt.scale, NAN);
  expectRejected(test::expectFor(t.p, t.a), bad, bad.size(), "NaN value scale");
}

TEST(WireFormat, SizesAreExactAndAligned) {
  for (const std::string& spec : test::allCodecSpecs()) {
    const CodecParams p = parseCodecSpec(spec);
    for (size_t n : {0u, 1u, 7u, 255u, 256u, 257u, 100000u}) {
      const size_t b = encodedBytes(p, n);
      EXPECT_EQ(b % kWireAlign, 0u);
      EXPECT_GE(b, sizeof(WireHeader));
      EXPECT_EQ(encodedBytes(p, n, true), b + alignWire(sizeof(WireHeader) + sizeof(GradStats)) - alignWire(sizeof(WireHeader)));
    }
  }
  EXPECT_EQ(encodedBytes(parseCodecSpec("q4"), 1u << 20), 48u + (4096u * 8u) + (1u << 19));
  EXPECT_EQ(encodedBytes(parseCodecSpec("none"), 1000), 48u + 4000u);
}

// An empty chunk (count 0: a rank's share of a buffer smaller than the
// ranks) decodes into no buffer at all, as an empty std::vector's data()
// is null. The decoder fuzz target found top-K clearing that null buffer
// with memset(nullptr, 0, 0), which UndefinedBehaviorSanitizer rejects.
TEST(WireFormat, AnEmptyChunkDecodesIntoANullBuffer) {
  for (const std::string& spec : test::allCodecSpecs()) {
    const CodecParams p = parseCodecSpec(spec);
    const PayloadLayout l = payloadLayout(p, 0, false);
    std::vector<uint8_t> payload(l.total, 0);
    const WireHeader h = makeWireHeader(p, 0, 0, l);
    std::memcpy(payload.data(), &h, sizeof h);
    DecodeExpect x;
    x.params = p;
    x.count = 0;
    for (DecodeMode mode : {DecodeMode::Overwrite, DecodeMode::Accumulate}) {
      try {
        decodeCpu(x, payload.data(), payload.size(), nullptr, mode);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), sqzInvalidUsage) << spec;
      }
    }
  }
}

TEST(WireFormat, EncoderRejectsBadArguments) {
  std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> small(10);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  EXPECT_THROW(encodeCpu(parseCodecSpec("q4"), a, small.data(), small.size()), Error);
  a.dtype = sqzInt32;
  std::vector<uint8_t> big(100000);
  EXPECT_THROW(encodeCpu(parseCodecSpec("q4"), a, big.data(), big.size()), Error);
  a.dtype = sqzFloat32;
  CodecParams p = parseCodecSpec("q4");
  p.blockSize = 12;
  EXPECT_THROW(encodeCpu(p, a, big.data(), big.size()), Error);
}

TEST(WireFormat, NonFiniteInputNeverPoisonsABlock) {
  for (const char* spec : {"q8", "q4:rn", "q1", "topk:0.5:int8", "randk:1:int8"}) {
    const CodecParams p = parseCodecSpec(spec);
    std::vector<float> x = test::normalInput(600, 2);
    x[5] = NAN;
    x[300] = -INFINITY;
    std::vector<float> e(x.size(), 0.0f);
    EncodeArgs a;
    a.input = x.data();
    a.count = x.size();
    a.residual = e.data();
    std::vector<uint8_t> payload(encodedBytes(p, x.size()));
    EncodeResult r = encodeCpu(p, a, payload.data(), payload.size());
    EXPECT_EQ(r.nonQuantizable, 2u) << spec;
    auto dec = test::decodeToVector(p, a, payload);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_TRUE(std::isfinite(dec[i])) << spec << " i=" << i;
      if (i != 5 && i != 300 && p.kind == CodecKind::Quant) {
        ASSERT_LT(std::fabs(dec[i] - x[i]), 8.0f) << spec;  // within the finite range
      }
    }
    // What was not sent stays in the residual.
    EXPECT_TRUE(std::isnan(e[5])) << spec;
    EXPECT_TRUE(std::isinf(e[300])) << spec;
  }
}

}  // namespace
}  // namespace sqz
