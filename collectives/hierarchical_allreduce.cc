#include "collectives/hierarchical_allreduce.h"

#include <cstring>

#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "collectives/tag_slots.h"
#include "transport/group_transport.h"

namespace sqz {
void HierarchicalAllreduce::run(const CompressedArgs& a, FlatRun interRun, const uint32_t seqs[3]) {
  const AllreduceArgs& b = a.base;
  GroupTransport node(transport_, groups_.node), cross(transport_, groups_.cross);
  const int G = node.size(), me = node.rank();
  const EvenSplit shards{b.count, static_cast<size_t>(G)};
  const size_t myOff = shards.offset(me), myLen = shards.length(me);

  // 1. Intra-node reduce-scatter (direct, exact, fp32): shard j to local rank j,
  //    summed in local-rank order.
  full_.resize(b.count);
  loadFloats(b.send, b.type, 0, b.count, full_.data());
  std::vector<float> incoming(static_cast<size_t>(G) * myLen);
  std::vector<RequestId> reqs;
  for (int r = 0; r < G; ++r)
    if (r != me) reqs.push_back(node.postRecv(r, Tag{seqs[0], tags::kHierIntra}, &incoming[r * myLen], myLen * 4));
  for (int r = 0; r < G; ++r)
    if (r != me)
      reqs.push_back(node.postSend(r, Tag{seqs[0], tags::kHierIntra}, &full_[shards.offset(r)], shards.length(r) * 4));
  node.waitAll(reqs, b.deadline);
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

  // 3. Intra-node allgather of the shards.
  if (myLen > 0) std::memcpy(&full_[myOff], shard_.data(), myLen * 4);
  for (int r = 0; r < G; ++r)
    if (r != me)
      reqs.push_back(node.postRecv(r, Tag{seqs[2], tags::kHierIntra}, &full_[shards.offset(r)], shards.length(r) * 4));
  for (int r = 0; r < G; ++r)
    if (r != me) reqs.push_back(node.postSend(r, Tag{seqs[2], tags::kHierIntra}, &full_[myOff], myLen * 4));
  node.waitAll(reqs, b.deadline);
  if (b.op == sqzAvg) divideInPlace(full_.data(), sqzFloat32, b.count, transport_.size());
  storeFloats(full_.data(), b.type, 0, b.count, b.recv);
  // Intra-node: G-1 shards out in each of the two stages (the inter-node
  // stage counted its own).
  a.tally().wireBytes += 2 * static_cast<size_t>(G - 1) * myLen * 4;
}

}  // namespace sqz
