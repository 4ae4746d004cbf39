#include "collectives/sparse_allreduce.h"

#include <algorithm>
#include <cstring>

#include "collectives/codec_buffers.h"
#include "collectives/peers.h"
#include "collectives/reduce_ops.h"
#include "collectives/tag_slots.h"
#include "common/error.h"
#include "kernels/cpu_codec.h"

namespace sqz {
namespace {

double ringBytes(double bytes, int n) { return RingAllreduce::bytesSentPerRank(bytes, n); }

}  // namespace

CodecParams SparseAllreduce::wireCodec(const CodecParams& codec) {
  CodecParams w = codec;
  w.blockedIndices = codec.kind == CodecKind::TopK;
  return w;
}

bool SparseAllreduce::denseIsCheaper(const CodecParams& c, size_t count, int n) {
  return (n - 1) * static_cast<double>(encodedBytes(wireCodec(c), count)) > ringBytes(4.0 * count, n);
}

double SparseAllreduce::bytesSentPerRank(const CodecParams& c, size_t count, int n, Shape shape) {
  if (n <= 1) return 0;
  const CodecParams codec = wireCodec(c);
  if (shape == Shape::kAllgather) {
    if (denseIsCheaper(codec, count, n)) return ringBytes(4.0 * count, n);
    return (n - 1) * static_cast<double>(encodedBytes(codec, count));
  }
  EvenSplit split{count, static_cast<size_t>(n)};
  size_t len = split.length(0);
  // Worst case for the range allgather: the union of N top-K sets.
  double pairs = std::min<double>(len, static_cast<double>(n) * selectedCount(codec, len));
  return (n - 1) * (static_cast<double>(encodedBytes(codec, len)) + std::min(8.0 * pairs, 4.0 * len));
}

void SparseAllreduce::run(const CompressedArgs& a, Shape shape) {
  if (shape == Shape::kSplit) runSplit(a);
  else runAllgather(a);
}

void SparseAllreduce::runAllgather(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const int n = transport_.size(), me = transport_.rank();
  const CodecParams codec = wireCodec(a.codec);
  const size_t bytes = encodedBytes(codec, b.count);
  CallCounters& c = a.tally();
  payloads_.resize(n * bytes);
  {
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    encodeCpu(codec, chunkEncodeArgs(a, me, 0, b.count, a.step), &payloads_[me * bytes], bytes);
  }
  DecodeExpect x;
  x.params = codec;
  x.count = b.count;
  dense_.assign(b.count, 0.0f);
  if (denseIsCheaper(a.codec, b.count, n)) {
    // Dense switch: densify this rank's K values and sum exactly.
    {
      PhaseTimer t(&c.decodeSeconds, "sqz decode");
      decodeCpu(x, &payloads_[me * bytes], bytes, dense_.data(), DecodeMode::Overwrite);
    }
    AllreduceArgs ring = b;
    ring.send = ring.recv = dense_.data();
    ring.type = sqzFloat32;
    ring.op = sqzSum;
    ring_.run(ring);
    c.wireBytes += static_cast<size_t>(ringBytes(4.0 * b.count, n));
  } else {
    std::vector<RequestId> reqs;
    forEachPeer(me, n, [&](int r) {
      reqs.push_back(transport_.postRecv(r, Tag{b.seq, tags::kSparsePayload}, &payloads_[r * bytes], bytes));
    });
    forEachPeer(me, n, [&](int r) {
      reqs.push_back(transport_.postSend(r, Tag{b.seq, tags::kSparsePayload}, &payloads_[me * bytes], bytes));
      c.wireBytes += bytes;
    });
    transport_.waitAll(reqs, b.deadline);
    // Scatter-add in rank order: the same additions in the same order everywhere.
    PhaseTimer t(&c.decodeSeconds, "sqz decode");
    for (int r = 0; r < n; ++r) decodeCpu(x, &payloads_[r * bytes], bytes, dense_.data(), DecodeMode::Accumulate);
  }
  if (b.op == sqzAvg) divideInPlace(dense_.data(), sqzFloat32, b.count, n);
  storeFloats(dense_.data(), b.type, 0, b.count, b.recv);
}

void SparseAllreduce::runSplit(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const int n = transport_.size(), me = transport_.rank();
  const EvenSplit split{b.count, static_cast<size_t>(n)};
  const CodecParams codec = wireCodec(a.codec);
  auto payloadBytes = [&](int j) { return encodedBytes(codec, split.length(j)); };
  const size_t slot = payloadBytes(0);
  CallCounters& c = a.tally();

  // Each range's top-K to its owner; the owner's own range stays local.
  payloads_.resize(2 * n * slot);
  unsigned char* out = payloads_.data();
  unsigned char* in = payloads_.data() + n * slot;
  std::vector<RequestId> recvs(n), sends;
  forEachPeer(me, n, [&](int r) {
    recvs[r] = transport_.postRecv(r, Tag{b.seq, tags::kSparsePayload}, in + r * slot, payloadBytes(me));
  });
  auto encodeRange = [&](int j, unsigned char* dst) {
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    encodeCpu(codec, chunkEncodeArgs(a, me, split.offset(j), split.length(j), a.step), dst + j * slot, slot);
  };
  encodeRange(me, in);
  forEachPeer(me, n, [&](int j) {
    encodeRange(j, out);
    sends.push_back(transport_.postSend(j, Tag{b.seq, tags::kSparsePayload}, out + j * slot, payloadBytes(j)));
    c.wireBytes += payloadBytes(j);
  });
  const size_t myOff = split.offset(me), myLen = split.length(me);
  std::vector<float> range(myLen, 0.0f);
  DecodeExpect x;
  x.params = codec;
  x.count = myLen;
  x.chunkOffset = myOff;
  for (int r = 0; r < n; ++r) {
    if (r != me) transport_.wait(recvs[r], b.deadline);
    PhaseTimer t(&c.decodeSeconds, "sqz decode");
    decodeCpu(x, in + r * slot, payloadBytes(me), range.data(), DecodeMode::Accumulate);
  }
  transport_.waitAll(sends, b.deadline);

  // Allgather of the summed ranges: exact pairs or dense, whichever is smaller.
  uint64_t nonzero = 0;
  for (float v : range) nonzero += v != 0.0f;
  const bool sparse = nonzero * 8 < myLen * 4;
  std::vector<unsigned char> mine(sparse ? nonzero * 8 : myLen * 4);
  if (sparse) {
    size_t k = 0;
    for (size_t i = 0; i < myLen; ++i) {
      if (range[i] == 0.0f) continue;
      uint32_t idx = static_cast<uint32_t>(i);
      std::memcpy(&mine[k * 8], &idx, 4);
      std::memcpy(&mine[k * 8 + 4], &range[i], 4);
      ++k;
    }
  } else if (myLen > 0) {
    std::memcpy(mine.data(), range.data(), myLen * 4);
  }
  // Sizes first (one word per rank), so every message has a known length.
  std::vector<uint64_t> sizes(n);
  sizes[me] = sparse ? nonzero : UINT64_MAX;  // UINT64_MAX: dense
  std::vector<RequestId> reqs;
  forEachPeer(me, n, [&](int r) { reqs.push_back(transport_.postRecv(r, Tag{b.seq, tags::kSparseCount}, &sizes[r], 8)); });
  forEachPeer(me, n, [&](int r) { reqs.push_back(transport_.postSend(r, Tag{b.seq, tags::kSparseCount}, &sizes[me], 8)); });
  transport_.waitAll(reqs, b.deadline);
  std::vector<std::vector<unsigned char>> ranges(n);
  for (int r = 0; r < n; ++r) {
    if (r == me) continue;
    size_t len = split.length(r);
    // A peer's announced size is checked before it sizes a buffer.
    SQZ_REQUIRE(sizes[r] == UINT64_MAX || sizes[r] <= len, sqzInvalidUsage,
                "sparse allreduce: rank %d announced %llu pairs for a range of %zu", r,
                static_cast<unsigned long long>(sizes[r]), len);
    ranges[r].resize(sizes[r] == UINT64_MAX ? len * 4 : sizes[r] * 8);
    reqs.push_back(transport_.postRecv(r, Tag{b.seq, tags::kSparseRange}, ranges[r].data(), ranges[r].size()));
  }
  forEachPeer(me, n, [&](int r) {
    reqs.push_back(transport_.postSend(r, Tag{b.seq, tags::kSparseRange}, mine.data(), mine.size()));
    c.wireBytes += mine.size() + 8;
  });
  transport_.waitAll(reqs, b.deadline);
  ranges[me] = std::move(mine);

  dense_.assign(b.count, 0.0f);
  for (int r = 0; r < n; ++r) {
    float* dst = dense_.data() + split.offset(r);
    const size_t len = split.length(r);
    if (sizes[r] == UINT64_MAX) {
      if (len > 0) std::memcpy(dst, ranges[r].data(), len * 4);
      continue;
    }
    for (uint64_t k = 0; k < sizes[r]; ++k) {
      uint32_t idx;
      float v;
      std::memcpy(&idx, &ranges[r][k * 8], 4);
      std::memcpy(&v, &ranges[r][k * 8 + 4], 4);
      SQZ_REQUIRE(idx < len, sqzInvalidUsage, "sparse allreduce: rank %d sent index %u outside its range of %zu", r,
                  idx, len);
      dst[idx] = v;
    }
  }
  if (b.op == sqzAvg) divideInPlace(dense_.data(), sqzFloat32, b.count, n);
  storeFloats(dense_.data(), b.type, 0, b.count, b.recv);
}

}  // namespace sqz
