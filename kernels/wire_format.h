// The payload of one encoded chunk: a versioned 48-byte header, an optional
// statistics block (GradStats, for lagged level agreement), then the codec's
// sections, each 16-byte aligned so the GPU can use vector stores:
//   none          body: count fp32
//   bf16, fp16    body: count uint16
//   qB            params: per block {fp32 lo, fp32 delta};  codes: count*B bits,
//                 little-endian within each byte, every block byte-aligned
//   sign          params: per block fp32 scale (>= 0), [rotated (level 0x40):
//                 then, 8-byte aligned, the uint64 rotation key of the
//                 encode call];  bits: count bits, bit i of byte j is element
//                 8j+i, 1 = +scale, 0 = -scale (of the rotated block when
//                 rotated; kernels/cpu_sign_rotation.h)
//   topk          params: K uint32 indices (strictly increasing, < count);
//                 [int8 only: fp32 scale]; values: K x {fp32|bf16|int8}
//                 With blockedIndices (level bit 0x20), where it is smaller
//                 (2K > 4B for B = ceil(count / 65536) blocks), params are
//                 B uint32 running counts (block b's indices are those at
//                 positions [end[b-1], end[b]); end[B-1] = K), then K uint16
//                 offsets (index - 65536 b), half the bytes of 32-bit
//                 indices at the cost of 4 bytes per 65536 elements. The
//                 size still follows from (count, K), so messages keep a
//                 known length.
//   randk         [int8 only: fp32 scale]; values: K x {fp32|bf16|int8}
//                 (indices follow from the shared seed; see randkIndex)
// The receiver always knows what it expects (codec, level, count, offset,
// size), so decoding checks the header against that expectation, field by
// field, before it writes a single element.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/codec_params.h"
#include "kernels/grad_stats.h"
#include "kernels/half.h"

namespace sqz {

inline constexpr uint32_t kWireMagic = 0x315a5153u;  // "SQZ1" in memory order
inline constexpr uint16_t kWireVersion = 1;
inline constexpr size_t kWireAlign = 16;
// Indices on the wire are 32-bit: a chunk holds fewer than 2^32 elements.
inline constexpr uint64_t kMaxChunkElements = 0xffffffffull;
// Elements per block of blocked top-K indices (one uint16 offset range).
inline constexpr uint64_t kIndexBlock = 1ull << 16;

struct WireHeader {
  uint32_t magic;
  uint16_t version;
  uint8_t codec;   // CodecKind
  uint8_t level;   // Quant: bits | 0x80 if stochastic; TopK/RandK: ValueFormat | 0x10 if rescaled
  uint32_t blockSize;      // Quant and Sign, else 0
  uint32_t statsBytes;     // 0 or sizeof(GradStats)
  uint64_t count;          // elements in this chunk
  uint64_t chunkOffset;    // index of the chunk's first element in the whole buffer
  uint64_t selected;       // K for TopK/RandK, else 0
  uint64_t payloadBytes;   // everything, header included
};
static_assert(sizeof(WireHeader) == 48, "the wire header is 48 bytes");

SQZ_HD size_t alignWire(size_t x) { return (x + kWireAlign - 1) & ~(kWireAlign - 1); }

SQZ_HD bool hasBlocks(const CodecParams& p) { return p.kind == CodecKind::Quant || p.kind == CodecKind::Sign; }

SQZ_HD uint8_t wireLevel(const CodecParams& p) {
  switch (p.kind) {
    case CodecKind::Quant: return static_cast<uint8_t>(p.bits | (p.stochastic ? 0x80 : 0));
    case CodecKind::TopK: return static_cast<uint8_t>(static_cast<unsigned>(p.values) | (p.blockedIndices ? 0x20 : 0));
    case CodecKind::RandK: return static_cast<uint8_t>(static_cast<unsigned>(p.values) | (p.rescale ? 0x10 : 0));
    case CodecKind::Sign: return static_cast<uint8_t>(p.rotate ? 0x40 : 0);
    default: return 0;
  }
}

// Byte offsets of each section; `total` is encodedBytes.
struct PayloadLayout {
  size_t stats;      // statistics block (statsBytes long)
  size_t statsBytes;
  size_t params;     // Quant / Sign block params, TopK indices
  size_t scale;      // int8 value scale (TopK/RandK with Int8)
  size_t body;       // codes or values
  size_t blocks;     // Quant / Sign blocks
  size_t selected;   // K
  size_t indexBlocks;  // TopK: blocks of blocked indices (0: uint32 indices)
  size_t rotationKey;  // Sign with rotate: the encode call's uint64 rotation key
  size_t total;
};

SQZ_HD size_t indexBlockCount(size_t n) { return static_cast<size_t>((n + kIndexBlock - 1) / kIndexBlock); }

SQZ_HD PayloadLayout payloadLayout(const CodecParams& p, size_t n, bool withStats) {
  PayloadLayout l{};
  l.stats = sizeof(WireHeader);
  l.statsBytes = withStats ? sizeof(GradStats) : 0;
  size_t at = alignWire(l.stats + l.statsBytes);
  l.params = l.scale = l.body = at;
  switch (p.kind) {
    case CodecKind::None: at += n * 4; break;
    case CodecKind::Bf16:
    case CodecKind::Fp16: at += n * 2; break;
    case CodecKind::Quant: {
      size_t bs = p.blockSize ? p.blockSize : 1;
      l.blocks = (n + bs - 1) / bs;
      at = alignWire(at + l.blocks * 8);
      l.body = at;
      at += (n * p.bits + 7) / 8;
      break;
    }
    case CodecKind::Sign: {
      size_t bs = p.blockSize ? p.blockSize : 1;
      l.blocks = (n + bs - 1) / bs;
      at += l.blocks * 4;
      if (p.rotate) {
        l.rotationKey = (at + 7) & ~size_t{7};
        at = l.rotationKey + 8;
      }
      at = alignWire(at);
      l.body = at;
      at += (n + 7) / 8;
      break;
    }
    case CodecKind::TopK:
    case CodecKind::RandK: {
      l.selected = selectedCount(p, n);
      if (p.kind == CodecKind::TopK) {
        const size_t blocks = indexBlockCount(n);
        const bool blocked = p.blockedIndices && 2 * l.selected > 4 * blocks;
        l.indexBlocks = blocked ? blocks : 0;
        at = alignWire(at + (blocked ? 4 * blocks + 2 * l.selected : 4 * l.selected));
      }
      l.scale = at;
      if (p.values == ValueFormat::Int8) at = alignWire(at + 4);
      l.body = at;
      at += l.selected * valueBytes(p.values);
      break;
    }
  }
  l.total = alignWire(at);
  return l;
}

// The exact payload size of n elements: what a fixed-size message needs.
SQZ_HD size_t encodedBytes(const CodecParams& p, size_t n, bool withStats = false) {
  return payloadLayout(p, n, withStats).total;
}

SQZ_HD WireHeader makeWireHeader(const CodecParams& p, uint64_t n, uint64_t chunkOffset, const PayloadLayout& l) {
  WireHeader h{};
  h.magic = kWireMagic;
  h.version = kWireVersion;
  h.codec = static_cast<uint8_t>(p.kind);
  h.level = wireLevel(p);
  h.blockSize = hasBlocks(p) ? p.blockSize : 0;
  h.statsBytes = static_cast<uint32_t>(l.statsBytes);
  h.count = n;
  h.chunkOffset = chunkOffset;
  h.selected = l.selected;
  h.payloadBytes = l.total;
  return h;
}

// What the receiver expects of one payload.
struct DecodeExpect {
  CodecParams params;
  uint64_t count = 0;
  uint64_t chunkOffset = 0;
  bool withStats = false;
  // RandK: the shared key that chose the indices (rank is not part of it).
  uint64_t seed = 0;
  uint64_t step = 0;
};

// Null when the header matches the expectation and `bytes` received; else
// what is wrong (a static string, usable on the device too).
SQZ_HD const char* checkWireHeader(const WireHeader& h, const DecodeExpect& e, size_t bytes) {
  if (bytes < sizeof(WireHeader)) return "payload shorter than its header";
  if (h.magic != kWireMagic) return "bad magic";
  if (h.version != kWireVersion) return "unsupported wire version";
  if (h.codec != static_cast<uint8_t>(e.params.kind)) return "codec mismatch";
  if (h.level != wireLevel(e.params)) return "codec level mismatch";
  if (h.blockSize != (hasBlocks(e.params) ? e.params.blockSize : 0u)) return "block size mismatch";
  if (h.count != e.count) return "element count mismatch";
  if (h.chunkOffset != e.chunkOffset) return "chunk offset mismatch";
  if (e.count > kMaxChunkElements) return "chunk too large";
  PayloadLayout l = payloadLayout(e.params, e.count, e.withStats);
  if (h.statsBytes != l.statsBytes) return "statistics block mismatch";
  if (h.selected != l.selected) return "selected count mismatch";
  if (h.payloadBytes != l.total) return "payload size field mismatch";
  if (bytes != l.total) return "payload size does not match the expected size";
  return nullptr;
}

// The sender's own check of its parameters (same rules on CPU and GPU).
SQZ_HD const char* checkCodecParams(const CodecParams& p) {
  if (p.rotate && p.kind != CodecKind::Sign) return "rotation is an option of the sign codec only";
  switch (p.kind) {
    case CodecKind::None:
    case CodecKind::Bf16:
    case CodecKind::Fp16: return nullptr;
    case CodecKind::Quant:
      if (p.bits != 1 && p.bits != 2 && p.bits != 4 && p.bits != 8) return "quantization bits must be 1, 2, 4 or 8";
      if (p.blockSize == 0 || p.blockSize % 8 != 0 || p.blockSize > kMaxBlockSize)
        return "block size must be a positive multiple of 8, at most 65536";
      return nullptr;
    case CodecKind::Sign:
      if (p.blockSize == 0 || p.blockSize % kSignBlockMultiple != 0 || p.blockSize > kMaxBlockSize)
        return "sign block size must be a positive multiple of 32, at most 65536";
      return nullptr;
    case CodecKind::TopK:
    case CodecKind::RandK:
      if (!(p.ratio > 0.0 && p.ratio <= 1.0)) return "ratio must be in (0, 1]";
      if (static_cast<unsigned>(p.values) > 2) return "bad value format";
      return nullptr;
  }
  return "unknown codec";
}

}  // namespace sqz
