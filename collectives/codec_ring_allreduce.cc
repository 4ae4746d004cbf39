#include "collectives/codec_ring_allreduce.h"

#include <algorithm>
#include <cstring>

#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "collectives/ring_schedule.h"
#include "collectives/tag_slots.h"
#include "kernels/cpu_codec.h"

namespace sqz {

// One call: the ring, where each chunk's payload lies, and the sends in
// flight. Chunk c of any segment starts c full chunks into its segment's
// payload area (every chunk but a segment's last is full).
class CodecRingAllreduce::Call {
 public:
  Call(CodecRingAllreduce& self, const CompressedArgs& a);

  // Every allgather receive, into the final payload areas (which nothing
  // else writes), so that arrivals never wait for a posted buffer.
  void postAllgatherRecvs();
  // N-1 steps: receive a chunk, decode-add it, re-encode it, forward it. The
  // last step's chunks are the owned segment: encoded once more as final
  // payloads and sent as the allgather's first step.
  void reduceScatter();
  // Forward each arriving final chunk, then decode it (overwrite).
  void allgather();
  // Waits for the sends, divides for avg, writes the output.
  void finish();

 private:
  enum Area : size_t { kSendEven = 0, kRecvEven = 2, kFinal = 4 };
  unsigned char* at(size_t area, size_t c) { return self_.payloads_.data() + area * area_ + c * fullChunk_; }
  unsigned char* finalChunk(size_t seg, size_t c) { return at(kFinal + seg, c); }
  size_t bytes(size_t seg, size_t c) const { return encodedBytes(a_.codec, ring_.chunkLength(seg, c)); }
  Tag tag(size_t step, size_t c) const { return Tag{b_.seq, ring_.slot(step, c)}; }
  RequestId send(size_t step, size_t seg, size_t c, const unsigned char* payload);
  RequestId recv(size_t step, size_t seg, size_t c, unsigned char* payload) {
    return t_.postRecv(ring_.left(), tag(step, c), payload, bytes(seg, c));
  }
  void encode(size_t seg, size_t c, unsigned char* payload);
  void decode(size_t seg, size_t c, const unsigned char* payload, DecodeMode mode);
  // The owned segment's chunk c, fully summed: its final payload, sent on
  // (N > 1) and decoded here as every other rank will.
  void finishOwned(size_t c);

  CodecRingAllreduce& self_;
  const CompressedArgs& a_;
  const AllreduceArgs& b_;
  Transport& t_;
  CallCounters& counters_;
  const int me_;
  const RingSchedule ring_;
  const size_t fullChunk_, area_;
  float* residual_;
  std::vector<std::vector<RequestId>> gathered_;  // per allgather step, per chunk
  std::vector<RequestId> sends_;
};

CodecRingAllreduce::CodecRingAllreduce(Transport& transport, size_t chunkBytes)
    : transport_(transport), chunkBytes_(std::max<size_t>(chunkBytes, 4096)) {}

size_t CodecRingAllreduce::chunkElements(const CodecParams& codec, size_t chunkBytes, size_t count, int nranks) {
  constexpr size_t kMaxChunks = size_t(1) << tags::kRingChunkBits;
  const size_t longest = EvenSplit{count, static_cast<size_t>(std::max(nranks, 1))}.length(0);
  // A quarter of the exact ring's chunk in input elements: these payloads
  // are 2-32x smaller on the wire, and finer chunks kept the link busier
  // (perf/results/gloo_testbed.md, "q4 with the codec ring pipelined").
  constexpr size_t kShare = 4;
  const size_t chunk =
      std::max({size_t{1}, chunkBytes / kShare / sizeof(float), (longest + kMaxChunks - 1) / kMaxChunks});
  const size_t block = hasBlocks(codec) ? std::max<size_t>(codec.blockSize, 1) : 1;
  return (chunk + block - 1) / block * block;
}

CodecRingAllreduce::Call::Call(CodecRingAllreduce& self, const CompressedArgs& a)
    : self_(self),
      a_(a),
      b_(a.base),
      t_(self.transport_),
      counters_(a.tally()),
      me_(t_.rank()),
      ring_(t_.size(), me_, b_.count, chunkElements(a.codec, self.chunkBytes_, b_.count, t_.size())),
      fullChunk_(bytes(0, 0)),
      area_(ring_.chunks(0) * fullChunk_) {
  // acc = g + e for the whole buffer; the residual restarts from zero and
  // collects what each of this rank's encodings drops.
  self.acc_.resize(b_.count);
  loadFloats(b_.send, b_.type, 0, b_.count, self.acc_.data());
  residual_ = a.residual;
  if (residual_) {
    for (size_t i = 0; i < b_.count; ++i) self.acc_[i] += residual_[i];
    std::memset(residual_, 0, b_.count * sizeof(float));
  } else {  // without error feedback the encoder still needs somewhere to put e'
    self.ownResidual_.assign(b_.count, 0.0f);
    residual_ = self.ownResidual_.data();
  }
  self.payloads_.resize((kFinal + t_.size()) * area_);
}

RequestId CodecRingAllreduce::Call::send(size_t step, size_t seg, size_t c, const unsigned char* payload) {
  counters_.wireBytes += bytes(seg, c);
  return t_.postSend(ring_.right(), tag(step, c), payload, bytes(seg, c));
}

void CodecRingAllreduce::Call::encode(size_t seg, size_t c, unsigned char* payload) {
  const size_t off = ring_.chunkOffset(seg, c);
  PhaseTimer timer(&counters_.encodeSeconds, "sqz encode");
  encodeCpu(a_.codec,
            encodeArgs(a_, self_.acc_.data() + off, sqzFloat32, residual_ + off, off, ring_.chunkLength(seg, c), me_,
                       a_.step),
            payload, bytes(seg, c));
}

void CodecRingAllreduce::Call::decode(size_t seg, size_t c, const unsigned char* payload, DecodeMode mode) {
  DecodeExpect x;
  x.params = a_.codec;
  x.count = ring_.chunkLength(seg, c);
  x.chunkOffset = ring_.chunkOffset(seg, c);
  PhaseTimer timer(&counters_.decodeSeconds, "sqz decode");
  decodeCpu(x, payload, bytes(seg, c), self_.acc_.data() + x.chunkOffset, mode);
}

void CodecRingAllreduce::Call::finishOwned(size_t c) {
  const size_t own = ring_.owned();
  encode(own, c, finalChunk(own, c));
  if (ring_.steps() > 0) sends_.push_back(send(ring_.allgatherStep(0), own, c, finalChunk(own, c)));
  decode(own, c, finalChunk(own, c), DecodeMode::Overwrite);
}

void CodecRingAllreduce::Call::postAllgatherRecvs() {
  gathered_.assign(ring_.steps(), {});
  for (size_t s = 0; s < ring_.steps(); ++s) {
    const size_t seg = ring_.allgatherRecv(s);
    for (size_t c = 0; c < ring_.chunks(seg); ++c)
      gathered_[s].push_back(recv(ring_.allgatherStep(s), seg, c, finalChunk(seg, c)));
  }
}

void CodecRingAllreduce::Call::reduceScatter() {
  if (ring_.steps() == 0) {  // one rank: its encoding is the result
    for (size_t c = 0; c < ring_.chunks(ring_.owned()); ++c) finishOwned(c);
    return;
  }
  // Step s sends from area kSendEven + s % 2 and receives into
  // kRecvEven + s % 2; chunk c of an area is rewritten only once the send
  // two steps before, from the same place, has completed.
  auto postRecvs = [&](size_t s) {
    std::vector<RequestId> ids;
    const size_t seg = ring_.reduceScatterRecv(s);
    for (size_t c = 0; c < ring_.chunks(seg); ++c) ids.push_back(recv(s, seg, c, at(kRecvEven + s % 2, c)));
    return ids;
  };
  std::vector<RequestId> sending[2], recvs = postRecvs(0);
  const size_t first = ring_.reduceScatterSend(0);
  for (size_t c = 0; c < ring_.chunks(first); ++c) {
    encode(first, c, at(kSendEven, c));
    sending[0].push_back(send(0, first, c, at(kSendEven, c)));
  }
  for (size_t s = 0; s < ring_.steps(); ++s) {
    const bool last = s + 1 == ring_.steps();
    const size_t seg = ring_.reduceScatterRecv(s), next = (s + 1) % 2;
    std::vector<RequestId> forwardRecvs, previous;
    if (!last) {
      forwardRecvs = postRecvs(s + 1);
      previous.swap(sending[next]);
    }
    for (size_t c = 0; c < ring_.chunks(seg); ++c) {
      t_.wait(recvs[c], b_.deadline);
      decode(seg, c, at(kRecvEven + s % 2, c), DecodeMode::Accumulate);
      if (last) {
        finishOwned(c);
        continue;
      }
      if (c < previous.size()) t_.wait(previous[c], b_.deadline);
      encode(seg, c, at(kSendEven + next, c));
      sending[next].push_back(send(s + 1, seg, c, at(kSendEven + next, c)));
    }
    for (size_t c = ring_.chunks(seg); c < previous.size(); ++c) t_.wait(previous[c], b_.deadline);
    recvs.swap(forwardRecvs);
  }
  for (auto& ids : sending) sends_.insert(sends_.end(), ids.begin(), ids.end());
}

void CodecRingAllreduce::Call::allgather() {
  for (size_t s = 0; s < ring_.steps(); ++s) {
    const size_t seg = ring_.allgatherRecv(s);
    for (size_t c = 0; c < ring_.chunks(seg); ++c) {
      t_.wait(gathered_[s][c], b_.deadline);
      if (s + 1 < ring_.steps()) sends_.push_back(send(ring_.allgatherStep(s + 1), seg, c, finalChunk(seg, c)));
      decode(seg, c, finalChunk(seg, c), DecodeMode::Overwrite);
    }
  }
}

void CodecRingAllreduce::Call::finish() {
  t_.waitAll(sends_, b_.deadline);
  float* sum = self_.acc_.data();
  if (b_.op == sqzAvg) divideInPlace(sum, sqzFloat32, b_.count, t_.size());
  storeFloats(sum, b_.type, 0, b_.count, b_.recv);
}

void CodecRingAllreduce::run(const CompressedArgs& a) {
  Call call(*this, a);
  try {
    call.postAllgatherRecvs();
    call.reduceScatter();
    call.allgather();
    call.finish();
  } catch (...) {
    // A malformed payload throws from a decode while later receives are
    // posted into payloads_: none may land there after the call.
    transport_.cancelAll();
    throw;
  }
}

}  // namespace sqz
