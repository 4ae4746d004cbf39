#include "collectives/hierarchical_allreduce.h"

#include <cstring>

#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "collectives/tag_slots.h"
#include "transport/group_transport.h"

namespace sqz {

void HierarchicalAllreduce::run(const CompressedArgs& a, FlatRun interRun, const CodecParams& intraCodec,
                                const uint32_t seqs[3]) {
  const AllreduceArgs& b = a.base;
  GroupTransport node(transport_, groups_.node), cross(transport_, groups_.cross);
  const int G = node.size(), me = node.rank();
  const EvenSplit shards{b.count, static_cast<size_t>(G)};
  const size_t myOff = shards.offset(me), myLen = shards.length(me);
  CallCounters& tally = a.tally();
  // A cast intra-node codec has error feedback of its own in the residual
  // of the shards this rank sends (the inter stage owns its own shard's).
  // Its own shard's share of the allgather's rounding is kept there too:
  // an inter stage with a codec sends it on the next call; an exact one
  // leaves it to this stage, which adds it to the shard before reducing.
  const bool cast = intraCodec.kind != CodecKind::None;
  auto payloadBytes = [&](int r) { return encodedBytes(intraCodec, shards.length(r)); };
  const size_t slot = cast ? payloadBytes(0) : 0;  // shard 0 is the longest
  auto encodeShard = [&](const float* in, size_t off, size_t len, float* residual, unsigned char* out) {
    PhaseTimer t(&tally.encodeSeconds, "sqz encode");
    encodeCpu(intraCodec, encodeArgs(a, in, sqzFloat32, residual, off, len, transport_.rank(), a.step), out,
              encodedBytes(intraCodec, len));
  };
  auto decodeShard = [&](const unsigned char* in, size_t off, size_t len, float* out) {
    DecodeExpect x;
    x.params = intraCodec;
    x.count = len;
    x.chunkOffset = off;
    PhaseTimer t(&tally.decodeSeconds, "sqz decode");
    decodeCpu(x, in, encodedBytes(intraCodec, len), out, DecodeMode::Overwrite);
  };

  // 1. Intra-node reduce-scatter (direct: shard j to local rank j, summed in
  //    local-rank order in fp32), exact or cast.
  full_.resize(b.count);
  loadFloats(b.send, b.type, 0, b.count, full_.data());
  if (cast && a.residual && a.codec.kind == CodecKind::None) {
    for (size_t i = myOff; i < myOff + myLen; ++i) {
      full_[i] += a.residual[i];
      a.residual[i] = 0.0f;
    }
  }
  std::vector<float> incoming(static_cast<size_t>(G) * myLen);
  std::vector<RequestId> reqs;
  if (cast) {
    sendPayloads_.resize(static_cast<size_t>(G) * slot);
    recvPayloads_.resize(static_cast<size_t>(G) * slot);
    for (int r = 0; r < G; ++r)
      if (r != me)
        reqs.push_back(node.postRecv(r, Tag{seqs[0], tags::kHierIntra}, &recvPayloads_[r * slot], payloadBytes(me)));
    for (int k = 1; k < G; ++k) {
      const int r = (me + k) % G;
      const size_t off = shards.offset(r), len = shards.length(r);
      encodeShard(&full_[off], off, len, a.residual ? a.residual + off : nullptr, &sendPayloads_[r * slot]);
      reqs.push_back(node.postSend(r, Tag{seqs[0], tags::kHierIntra}, &sendPayloads_[r * slot], payloadBytes(r)));
      tally.wireBytes += payloadBytes(r);
    }
    node.waitAll(reqs, b.deadline);
    for (int r = 0; r < G; ++r)
      if (r != me) decodeShard(&recvPayloads_[r * slot], myOff, myLen, &incoming[r * myLen]);
  } else {
    for (int r = 0; r < G; ++r)
      if (r != me) reqs.push_back(node.postRecv(r, Tag{seqs[0], tags::kHierIntra}, &incoming[r * myLen], myLen * 4));
    for (int r = 0; r < G; ++r)
      if (r != me)
        reqs.push_back(
            node.postSend(r, Tag{seqs[0], tags::kHierIntra}, &full_[shards.offset(r)], shards.length(r) * 4));
    node.waitAll(reqs, b.deadline);
    tally.wireBytes += static_cast<size_t>(G - 1) * myLen * 4;
  }
  if (myLen > 0) std::memcpy(&incoming[me * myLen], &full_[myOff], myLen * 4);
  shard_.assign(incoming.begin(), incoming.begin() + myLen);
  for (int r = 1; r < G; ++r) reduceInto(shard_.data(), &incoming[r * myLen], myLen, sqzFloat32, sqzSum);

  // 2. Inter-node allreduce of this shard (sum), with the shard's residual.
  CompressedArgs inter = a;
  inter.base.send = inter.base.recv = shard_.data();
  inter.base.count = myLen;
  inter.base.type = sqzFloat32;
  inter.base.op = sqzSum;
  inter.base.seq = seqs[1];
  inter.residual = a.residual ? a.residual + myOff : nullptr;
  if (cross.size() > 1) {
    FlatAllreduces flat(cross, chunkBytes_);
    interRun(flat, inter);
  }

  // 3. Intra-node allgather of the shards (the inter-node stage counted its
  //    own bytes). Cast: every rank, this one included, takes the shard as
  //    decoded, so all hold the same bits.
  reqs.clear();
  if (cast) {
    unsigned char* mine = &sendPayloads_[me * slot];
    encodeShard(shard_.data(), myOff, myLen, nullptr, mine);
    decodeShard(mine, myOff, myLen, &full_[myOff]);
    if (a.residual)
      for (size_t i = 0; i < myLen; ++i) a.residual[myOff + i] += shard_[i] - full_[myOff + i];
    for (int r = 0; r < G; ++r)
      if (r != me)
        reqs.push_back(node.postRecv(r, Tag{seqs[2], tags::kHierIntra}, &recvPayloads_[r * slot], payloadBytes(r)));
    for (int r = 0; r < G; ++r)
      if (r != me) reqs.push_back(node.postSend(r, Tag{seqs[2], tags::kHierIntra}, mine, payloadBytes(me)));
    node.waitAll(reqs, b.deadline);
    tally.wireBytes += static_cast<size_t>(G - 1) * payloadBytes(me);
    for (int r = 0; r < G; ++r)
      if (r != me) decodeShard(&recvPayloads_[r * slot], shards.offset(r), shards.length(r), &full_[shards.offset(r)]);
  } else {
    if (myLen > 0) std::memcpy(&full_[myOff], shard_.data(), myLen * 4);
    for (int r = 0; r < G; ++r)
      if (r != me)
        reqs.push_back(
            node.postRecv(r, Tag{seqs[2], tags::kHierIntra}, &full_[shards.offset(r)], shards.length(r) * 4));
    for (int r = 0; r < G; ++r)
      if (r != me) reqs.push_back(node.postSend(r, Tag{seqs[2], tags::kHierIntra}, &full_[myOff], myLen * 4));
    node.waitAll(reqs, b.deadline);
    tally.wireBytes += static_cast<size_t>(G - 1) * myLen * 4;
  }
  if (b.op == sqzAvg) divideInPlace(full_.data(), sqzFloat32, b.count, transport_.size());
  storeFloats(full_.data(), b.type, 0, b.count, b.recv);
}

}  // namespace sqz
