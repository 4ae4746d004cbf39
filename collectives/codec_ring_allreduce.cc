#include "collectives/codec_ring_allreduce.h"

#include <cstring>

#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "collectives/ring_schedule.h"
#include "kernels/cpu_codec.h"

namespace sqz {

void CodecRingAllreduce::run(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const int n = transport_.size(), me = transport_.rank();
  const RingSchedule ring(n, me, b.count);
  auto payloadBytes = [&](size_t s) { return encodedBytes(a.codec, ring.segmentLength(s)); };
  const size_t slot = payloadBytes(0);
  CallCounters& c = a.tally();
  auto tag = [&](size_t step) { return Tag{b.seq, ring.slot(step, 0)}; };

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
    const size_t off = ring.segmentOffset(s);
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    encodeCpu(a.codec, encodeArgs(a, acc_.data() + off, sqzFloat32, residual + off, off, ring.segmentLength(s), me, a.step),
              dst, slot);
  };
  auto expect = [&](size_t s) {
    DecodeExpect x;
    x.params = a.codec;
    x.count = ring.segmentLength(s);
    x.chunkOffset = ring.segmentOffset(s);
    return x;
  };

  // payloads_: [0] what this rank sends, [1] what it receives in the
  // reduce-scatter, [2 + r] segment r's final payload.
  payloads_.resize((2 + n) * slot);
  unsigned char* out = &payloads_[0];
  unsigned char* in = &payloads_[slot];
  auto finalPayload = [&](size_t s) { return &payloads_[(2 + s) * slot]; };
  std::vector<RequestId> sends;
  for (size_t s = 0; s < ring.steps(); ++s) {
    const size_t t = ring.reduceScatterSend(s), r = ring.reduceScatterRecv(s);
    RequestId recv = transport_.postRecv(ring.left(), tag(s), in, payloadBytes(r));
    transport_.waitAll(sends, b.deadline);  // `out` is free again once the last step's send is done
    encodeSegment(t, out);
    sends.push_back(transport_.postSend(ring.right(), tag(s), out, payloadBytes(t)));
    c.wireBytes += payloadBytes(t);
    transport_.wait(recv, b.deadline);
    PhaseTimer timer(&c.decodeSeconds, "sqz decode");
    decodeCpu(expect(r), in, payloadBytes(r), acc_.data() + ring.segmentOffset(r), DecodeMode::Accumulate);
  }
  transport_.waitAll(sends, b.deadline);

  // Allgather of the final encoded segments, forwarded as bytes.
  const size_t own = ring.owned();
  encodeSegment(own, finalPayload(own));
  std::vector<RequestId> recvs(ring.steps());
  for (size_t s = 0; s < ring.steps(); ++s) {
    const size_t r = ring.allgatherRecv(s);
    recvs[s] = transport_.postRecv(ring.left(), tag(ring.allgatherStep(s)), finalPayload(r), payloadBytes(r));
  }
  for (size_t s = 0; s < ring.steps(); ++s) {
    const size_t t = ring.allgatherSend(s);
    if (s > 0) transport_.wait(recvs[s - 1], b.deadline);  // forward what the last step brought
    sends.push_back(transport_.postSend(ring.right(), tag(ring.allgatherStep(s)), finalPayload(t), payloadBytes(t)));
    c.wireBytes += payloadBytes(t);
  }
  if (ring.steps() > 0) transport_.wait(recvs.back(), b.deadline);
  // Decode every segment from the same bytes on every rank.
  float* sum = acc_.data();
  for (int r = 0; r < n; ++r) {
    PhaseTimer timer(&c.decodeSeconds, "sqz decode");
    decodeCpu(expect(r), finalPayload(r), payloadBytes(r), sum + ring.segmentOffset(r), DecodeMode::Overwrite);
  }
  transport_.waitAll(sends, b.deadline);
  if (b.op == sqzAvg) divideInPlace(sum, sqzFloat32, b.count, n);
  storeFloats(sum, b.type, 0, b.count, b.recv);
}

}  // namespace sqz
