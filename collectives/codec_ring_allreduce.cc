#include "collectives/codec_ring_allreduce.h"

#include <cstring>

#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "kernels/cpu_codec.h"

namespace sqz {
namespace {

constexpr uint32_t kSlotBase = 0xfff000;  // + step (< 4096 steps)

size_t mod(long a, long n) { return static_cast<size_t>(((a % n) + n) % n); }

}  // namespace

double CodecRingAllreduce::bytesSentPerRank(const CodecParams& codec, size_t count, int n) {
  if (n <= 1) return 0;
  EvenSplit split{count, static_cast<size_t>(n)};
  return 2.0 * (n - 1) * static_cast<double>(encodedBytes(codec, split.length(0)));
}

void CodecRingAllreduce::run(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const int n = transport_.size(), me = transport_.rank();
  const EvenSplit seg{b.count, static_cast<size_t>(n)};
  const int right = static_cast<int>(mod(me + 1, n)), left = static_cast<int>(mod(me - 1, n));
  auto payloadBytes = [&](size_t s) { return encodedBytes(a.codec, seg.length(s)); };
  const size_t slot = payloadBytes(0);
  CallCounters scratch;
  CallCounters& c = a.counters ? *a.counters : scratch;

  // acc = g + e for the whole buffer; the residual restarts from zero and
  // collects what each of this rank's encodings drops.
  acc_.resize(b.count);
  loadFloats(b.send, b.type, 0, b.count, acc_.data());
  if (a.residual) {
    for (size_t i = 0; i < b.count; ++i) acc_[i] += a.residual[i];
    std::memset(a.residual, 0, b.count * sizeof(float));
  }
  // Without error feedback the encoder still needs somewhere to put e'.
  float* residual = a.residual;
  if (!residual) {
    ownResidual_.assign(b.count, 0.0f);
    residual = ownResidual_.data();
  }
  auto encodeSegment = [&](size_t s, unsigned char* dst) {
    EncodeArgs e;
    e.input = acc_.data() + seg.offset(s);
    e.dtype = sqzFloat32;
    e.count = seg.length(s);
    e.residual = residual + seg.offset(s);
    e.seed = a.seed;
    e.step = a.step;
    e.rank = static_cast<uint32_t>(me);
    e.chunkOffset = seg.offset(s);
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    encodeCpu(a.codec, e, dst, slot);
  };
  auto expect = [&](size_t s) {
    DecodeExpect x;
    x.params = a.codec;
    x.count = seg.length(s);
    x.chunkOffset = seg.offset(s);
    return x;
  };

  // payloads_: [0] what this rank sends, [1] what it receives in the
  // reduce-scatter, [2 + r] segment r's final payload.
  payloads_.resize((2 + n) * slot);
  std::vector<RequestId> sends;
  const size_t steps = static_cast<size_t>(n - 1);
  for (size_t s = 0; s < steps; ++s) {
    size_t t = mod(me - static_cast<long>(s), n), r = mod(me - static_cast<long>(s) - 1, n);
    unsigned char* out = &payloads_[0];
    unsigned char* in = &payloads_[slot];
    RequestId recv = transport_.postRecv(left, Tag{b.seq, kSlotBase + static_cast<uint32_t>(s)}, in, payloadBytes(r));
    transport_.waitAll(sends, b.deadline);  // `out` is free again once the last step's send is done
    encodeSegment(t, out);
    sends.push_back(transport_.postSend(right, Tag{b.seq, kSlotBase + static_cast<uint32_t>(s)}, out, payloadBytes(t)));
    c.wireBytes += payloadBytes(t);
    transport_.wait(recv, b.deadline);
    PhaseTimer timer(&c.decodeSeconds, "sqz decode");
    decodeCpu(expect(r), in, payloadBytes(r), acc_.data() + seg.offset(r), DecodeMode::Accumulate);
  }
  transport_.waitAll(sends, b.deadline);

  // Allgather of the final encoded segments, forwarded as bytes.
  const size_t own = mod(me + 1, n);
  encodeSegment(own, &payloads_[(2 + own) * slot]);
  std::vector<RequestId> recvs(steps);
  for (size_t s = 0; s < steps; ++s) {
    size_t r = mod(me - static_cast<long>(s), n);
    recvs[s] = transport_.postRecv(left, Tag{b.seq, kSlotBase + static_cast<uint32_t>(steps + s)},
                                   &payloads_[(2 + r) * slot], payloadBytes(r));
  }
  sends.push_back(transport_.postSend(right, Tag{b.seq, kSlotBase + static_cast<uint32_t>(steps)},
                                      &payloads_[(2 + own) * slot], payloadBytes(own)));
  c.wireBytes += payloadBytes(own);
  for (size_t s = 0; s < steps; ++s) {
    size_t r = mod(me - static_cast<long>(s), n);
    transport_.wait(recvs[s], b.deadline);
    if (s + 1 < steps) {
      sends.push_back(transport_.postSend(right, Tag{b.seq, kSlotBase + static_cast<uint32_t>(steps + s + 1)},
                                          &payloads_[(2 + r) * slot], payloadBytes(r)));
      c.wireBytes += payloadBytes(r);
    }
  }
  // Decode every segment from the same bytes on every rank.
  float* out = acc_.data();
  for (int r = 0; r < n; ++r) {
    PhaseTimer timer(&c.decodeSeconds, "sqz decode");
    decodeCpu(expect(r), &payloads_[(2 + r) * slot], payloadBytes(r), out + seg.offset(r), DecodeMode::Overwrite);
  }
  transport_.waitAll(sends, b.deadline);
  if (b.op == sqzAvg) divideInPlace(out, sqzFloat32, b.count, n);
  storeFloats(out, b.type, 0, b.count, b.recv);
}

}  // namespace sqz
