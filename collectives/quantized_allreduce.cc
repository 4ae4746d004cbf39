#include "collectives/quantized_allreduce.h"

#include "collectives/codec_buffers.h"
#include "collectives/peers.h"
#include "collectives/reduce_ops.h"
#include "collectives/tag_slots.h"
#include "kernels/cpu_codec.h"

namespace sqz {

void QuantizedAllreduce::run(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const int n = transport_.size(), me = transport_.rank();
  const EvenSplit split{b.count, static_cast<size_t>(n)};
  const size_t myOff = split.offset(me), myLen = split.length(me);
  auto payloadBytes = [&](int j) { return encodedBytes(a.codec, split.length(j)); };
  const size_t slot = payloadBytes(0);  // chunk 0 is the longest
  CallCounters& c = a.tally();

  sendPayloads_.resize(n * slot);
  recvPayloads_.resize(n * slot);
  gathered_.resize(n * slot);
  std::vector<RequestId> recvs(n), sends;

  // Reduce-scatter: my chunk's encoded contributions from every peer.
  forEachPeer(me, n, [&](int r) {
    recvs[r] = transport_.postRecv(r, Tag{b.seq, tags::kQa2aScatter}, &recvPayloads_[r * slot], payloadBytes(me));
  });
  forEachPeer(me, n, [&](int j) {
    {
      PhaseTimer t(&c.encodeSeconds, "sqz encode");
      encodeCpu(a.codec, chunkEncodeArgs(a, me, split.offset(j), split.length(j), a.step * 2), &sendPayloads_[j * slot],
                slot);
    }
    sends.push_back(transport_.postSend(j, Tag{b.seq, tags::kQa2aScatter}, &sendPayloads_[j * slot], payloadBytes(j)));
    c.wireBytes += payloadBytes(j);
  });
  // My own contribution to my chunk never crosses the wire: add it exactly
  // (with its residual, which is then fully spent).
  acc_.resize(myLen);
  loadFloats(b.send, b.type, myOff, myLen, acc_.data());
  if (a.residual) {
    float* res = a.residual + myOff;
    for (size_t i = 0; i < myLen; ++i) {
      acc_[i] += res[i];
      res[i] = 0.0f;
    }
  }
  DecodeExpect mine;
  mine.params = a.codec;
  mine.count = myLen;
  mine.chunkOffset = myOff;
  for (int r = 0; r < n; ++r) {
    if (r == me) continue;
    transport_.wait(recvs[r], b.deadline);
    PhaseTimer t(&c.decodeSeconds, "sqz decode");
    decodeCpu(mine, &recvPayloads_[r * slot], payloadBytes(me), acc_.data(), DecodeMode::Accumulate);
  }

  // The owner re-encodes its reduced chunk, with owner-side error feedback.
  {
    float* ownerResidual = a.ownerResidual && a.ownerResidualCount >= myLen ? a.ownerResidual : nullptr;
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    encodeCpu(a.codec, encodeArgs(a, acc_.data(), sqzFloat32, ownerResidual, myOff, myLen, me, a.step * 2 + 1),
              &gathered_[me * slot], slot);
  }
  forEachPeer(me, n, [&](int r) {
    recvs[r] = transport_.postRecv(r, Tag{b.seq, tags::kQa2aGather}, &gathered_[r * slot], payloadBytes(r));
  });
  forEachPeer(me, n, [&](int r) {
    sends.push_back(transport_.postSend(r, Tag{b.seq, tags::kQa2aGather}, &gathered_[me * slot], payloadBytes(me)));
    c.wireBytes += payloadBytes(me);
  });

  // Everyone (the owner included) decodes the same N payloads.
  out_.resize(b.type == sqzFloat32 ? 0 : b.count);
  float* out = b.type == sqzFloat32 ? static_cast<float*>(b.recv) : out_.data();
  for (int r = 0; r < n; ++r) {
    if (r != me) transport_.wait(recvs[r], b.deadline);
    DecodeExpect x;
    x.params = a.codec;
    x.count = split.length(r);
    x.chunkOffset = split.offset(r);
    PhaseTimer t(&c.decodeSeconds, "sqz decode");
    decodeCpu(x, &gathered_[r * slot], payloadBytes(r), out + split.offset(r), DecodeMode::Overwrite);
  }
  transport_.waitAll(sends, b.deadline);
  if (b.op == sqzAvg) divideInPlace(out, sqzFloat32, b.count, n);
  if (b.type != sqzFloat32) storeFloats(out, b.type, 0, b.count, b.recv);
}

}  // namespace sqz
