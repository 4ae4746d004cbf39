// Top-K payloads with blocked 16-bit indices (kernels/wire_format.h): the
// same decoded result as 32-bit indices in fewer bytes, used only where
// smaller, and every malformed block table or offset rejected before a
// single element is written.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "common/error.h"
#include "kernels/codec_math.h"
#include "tests/codec/codec_test_util.h"

namespace sqz {
namespace {

CodecParams blocked(const char* spec) {
  CodecParams p = parseCodecSpec(spec);
  p.blockedIndices = true;
  return p;
}

// The exact top-K decode of y, built without the codec: y at the K largest
// magnitudes (ties by lower index), 0 elsewhere (fp32 values).
std::vector<float> expectedDense(const std::vector<float>& y, size_t k) {
  std::vector<uint32_t> order(y.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return magnitudeKey(y[a]) > magnitudeKey(y[b]); });
  std::vector<float> out(y.size(), 0.0f);
  for (size_t j = 0; j < k; ++j) out[order[j]] = y[order[j]];
  return out;
}

size_t mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  size_t bad = got.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) bad += floatBits(got[i]) != floatBits(want[i]);
  return bad;
}

// n normal values and their blocked top-1% payload.
struct Encoded {
  std::vector<float> x;
  EncodeArgs a;
  CodecParams p = blocked("topk:0.01");
  std::vector<uint8_t> payload;
};

Encoded encodeNormal(size_t n, uint32_t seed) {
  Encoded e;
  e.x = test::normalInput(n, seed);
  e.a.input = e.x.data();
  e.a.count = n;
  e.payload = test::encodeToVector(e.p, e.a);
  return e;
}

struct Sizes {
  size_t n;
  const char* name;
};

TEST(BlockedIndices, DecodeAsThirtyTwoBitIndicesDoInFewerBytes) {
  for (Sizes s : {Sizes{3 * 65536 + 123, "4 blocks, partial last"}, Sizes{65536, "one full block"},
                  Sizes{1000, "one short block"}, Sizes{2 * 65536, "2 full blocks"}}) {
    const std::vector<float> x = test::normalInput(s.n, 21);
    for (const char* spec : {"topk:0.01", "topk:0.05:bf16", "topk:0.01:int8", "topk:1"}) {
      const CodecParams wide = parseCodecSpec(spec), packed = blocked(spec);
      EncodeArgs a;
      a.input = x.data();
      a.count = s.n;
      a.chunkOffset = 7;
      const auto p32 = test::encodeToVector(wide, a), p16 = test::encodeToVector(packed, a);
      const PayloadLayout l = payloadLayout(packed, s.n, false);
      ASSERT_EQ(l.indexBlocks, indexBlockCount(s.n)) << spec << " " << s.name;
      EXPECT_LT(p16.size(), p32.size()) << spec << " " << s.name;
      EXPECT_EQ(p16.size(), encodedBytes(packed, s.n));
      const auto d32 = test::decodeToVector(wide, a, p32), d16 = test::decodeToVector(packed, a, p16);
      EXPECT_EQ(mismatches(d16, d32), 0u) << spec << " " << s.name;
      if (parseCodecSpec(spec).values == ValueFormat::Fp32) {
        EXPECT_EQ(mismatches(d16, expectedDense(x, l.selected)), 0u) << spec << " " << s.name;
      }
    }
  }
}

// The value check above rejects wrong outputs: zeroed, halved, a dropped
// block, and what a decoder that forgot the block bases would write.
TEST(BlockedIndices, TheValueCheckRejectsBrokenDecodes) {
  const size_t n = 3 * 65536 + 123;
  const Encoded e = encodeNormal(n, 22);
  const std::vector<float>& x = e.x;
  const CodecParams& p = e.p;
  const EncodeArgs& a = e.a;
  const std::vector<uint8_t>& payload = e.payload;
  const std::vector<float> want = expectedDense(x, selectedCount(p, n));
  const std::vector<float> good = test::decodeToVector(p, a, payload);
  ASSERT_EQ(mismatches(good, want), 0u);
  std::vector<float> zeroed(n, 0.0f), halved = good, dropped = good, noBase(n, 0.0f);
  for (float& v : halved) v *= 0.5f;
  std::fill(dropped.begin() + 65536, dropped.begin() + 2 * 65536, 0.0f);
  // Offsets read without their block's base.
  const PayloadLayout l = payloadLayout(p, n, false);
  for (size_t j = 0; j < l.selected; ++j) {
    uint16_t offset;
    float v;
    std::memcpy(&offset, payload.data() + l.params + 4 * l.indexBlocks + 2 * j, 2);
    std::memcpy(&v, payload.data() + l.body + 4 * j, 4);
    noBase[offset] += v;
  }
  EXPECT_GT(mismatches(zeroed, want), 0u);
  EXPECT_GT(mismatches(halved, want), 0u);
  EXPECT_GT(mismatches(dropped, want), 0u);
  EXPECT_GT(mismatches(noBase, want), 0u);
}

TEST(BlockedIndices, UsedOnlyWhereSmallerAndNamedInTheLevel) {
  const size_t n = size_t{1} << 20;  // 16 blocks: 64 bytes of block table
  CodecParams sparse = blocked("topk:0.00001");  // K = 11: 22 bytes of offsets < 64
  EXPECT_EQ(payloadLayout(sparse, n, false).indexBlocks, 0u);
  EXPECT_EQ(encodedBytes(sparse, n), encodedBytes(parseCodecSpec("topk:0.00001"), n));
  CodecParams dense = blocked("topk:0.01");
  const PayloadLayout l = payloadLayout(dense, n, false);
  EXPECT_EQ(l.indexBlocks, 16u);
  EXPECT_EQ(l.body - l.params, alignWire(16 * 4 + 2 * l.selected));
  EXPECT_EQ(wireLevel(dense) & 0x20, 0x20);
  EXPECT_EQ(wireLevel(parseCodecSpec("topk:0.01")) & 0x20, 0);
}

// Decoding must throw sqzInvalidUsage and leave `out` untouched.
void expectRejected(const DecodeExpect& x, const std::vector<uint8_t>& payload, const char* what) {
  std::vector<float> out(x.count, -7.0f);
  try {
    decodeCpu(x, payload.data(), payload.size(), out.data(), DecodeMode::Accumulate);
    ADD_FAILURE() << "accepted: " << what;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzInvalidUsage) << what;
  }
  for (float v : out) ASSERT_EQ(v, -7.0f) << what << ": wrote before rejecting";
}

TEST(BlockedIndices, MalformedBlockTablesAndOffsetsAreRejected) {
  const size_t n = 3 * 65536 + 500;  // the last block holds 500 elements
  const Encoded e = encodeNormal(n, 23);
  const CodecParams& p = e.p;
  const EncodeArgs& a = e.a;
  const std::vector<uint8_t>& good = e.payload;
  const DecodeExpect xp = test::expectFor(p, a);
  const PayloadLayout l = payloadLayout(p, n, false);
  ASSERT_EQ(l.indexBlocks, 4u);
  const size_t ends = l.params, offsets = l.params + 4 * l.indexBlocks, k = l.selected;
  auto end = [&](size_t b) {
    uint32_t v;
    std::memcpy(&v, good.data() + ends + 4 * b, 4);
    return v;
  };
  auto offset = [&](size_t j) {
    uint16_t v;
    std::memcpy(&v, good.data() + offsets + 2 * j, 2);
    return v;
  };
  ASSERT_EQ(end(3), k);
  ASSERT_GT(end(0), 2u);
  ASSERT_LT(end(2), k);  // the short last block holds some indices
  auto with32 = [&](size_t at, uint32_t v) {
    auto b = good;
    std::memcpy(b.data() + at, &v, 4);
    return b;
  };
  auto with16 = [&](size_t at, uint16_t v) {
    auto b = good;
    std::memcpy(b.data() + at, &v, 2);
    return b;
  };
  expectRejected(xp, with32(ends, static_cast<uint32_t>(k + 1)), "a block ends past K");
  expectRejected(xp, with32(ends + 4, end(0) - 1), "block ends decrease");
  expectRejected(xp, with32(ends + 12, static_cast<uint32_t>(k - 1)), "blocks hold fewer than K indices");
  expectRejected(xp, with32(ends + 4, 0xffffffffu), "a block end far out of range");
  expectRejected(xp, with16(offsets + 2, offset(0)), "duplicate offset in a block");
  expectRejected(xp, with16(offsets, static_cast<uint16_t>(offset(1) + 1)), "offsets decrease in a block");
  expectRejected(xp, with16(offsets + 2 * (k - 1), 500), "offset past the short last block");
  expectRejected(xp, with16(offsets + 2 * (k - 1), 0xffff), "offset far past the short last block");
  // A receiver that expects 32-bit indices refuses the blocked layout (and the other way round).
  expectRejected(test::expectFor(parseCodecSpec("topk:0.01"), a), good, "level without the blocked bit");
  const auto wide = test::encodeToVector(parseCodecSpec("topk:0.01"), a);
  expectRejected(xp, wide, "32-bit indices where blocked ones are expected");
}

}  // namespace
}  // namespace sqz
