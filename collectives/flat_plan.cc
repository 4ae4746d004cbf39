#include "collectives/flat_plan.h"

#include "collectives/codec_ring_allreduce.h"
#include "collectives/direct_allreduce.h"
#include "collectives/quantized_allreduce.h"
#include "collectives/ring_allreduce.h"
#include "collectives/sparse_allreduce.h"
#include "common/error.h"

namespace sqz {

void runFlatAllreduce(Transport& transport, const std::string& algorithm, const CompressedArgs& args,
                      size_t chunkBytes) {
  RingAllreduce ring(transport, chunkBytes);
  if (algorithm == "ring") return ring.run(args.base);
  if (algorithm == "direct") return DirectAllreduce(transport).run(args.base);
  if (algorithm == "qa2a") return QuantizedAllreduce(transport).run(args);
  if (algorithm == "qring") return CodecRingAllreduce(transport).run(args);
  if (algorithm == "sparse_ag") return SparseAllreduce(transport, ring).run(args, SparseAllreduce::Shape::kAllgather);
  if (algorithm == "sparse_split") return SparseAllreduce(transport, ring).run(args, SparseAllreduce::Shape::kSplit);
  if (algorithm == "randk") return RandkAllreduce(ring, transport.size()).run(args);
  fail(sqzInternalError, "no flat allreduce algorithm '%s'", algorithm.c_str());
}

}  // namespace sqz
