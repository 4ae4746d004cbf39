// Two-level allreduce (DESIGN.md section 2): reduce-scatter inside each
// node (shared memory; exact, or each shard cast to bf16/fp16 with error
// feedback), one flat allreduce per shard across nodes among the ranks with
// the same local index (its own algorithm and codec, with error feedback on
// the shard), then allgather inside the node (exact, or cast). Each shard's
// final value comes out of one flat allreduce whose outputs agree bitwise
// and is copied within nodes (cast: every rank, its owner too, takes the
// decoded cast), so all ranks hold identical results.
#pragma once

#include <vector>

#include "collectives/compressed_args.h"
#include "collectives/flat_plan.h"
#include "collectives/hierarchy_groups.h"
#include "transport/transport.h"

namespace sqz {

class HierarchicalAllreduce {
 public:
  HierarchicalAllreduce(Transport& transport, HierarchyGroups groups, size_t chunkBytes)
      : transport_(transport), groups_(std::move(groups)), chunkBytes_(chunkBytes) {}
  // args.codec and `inter` are the inter-node stage's (an algorithm table
  // entry's run); intraCodec (none, bf16 or fp16) the two intra-node
  // stages'. `seqs`: three sequence numbers, one per stage.
  void run(const CompressedArgs& args, FlatRun inter, const CodecParams& intraCodec, const uint32_t seqs[3]);

 private:
  Transport& transport_;
  HierarchyGroups groups_;
  size_t chunkBytes_;
  std::vector<float> full_, shard_;
  std::vector<unsigned char> sendPayloads_, recvPayloads_;  // cast intra-node stages
};

}  // namespace sqz
