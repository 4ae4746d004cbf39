#include "collectives/flat_plan.h"

#include "common/error.h"

namespace sqz {

void FlatAllreduces::run(const std::string& algorithm, const CompressedArgs& args) {
  if (algorithm == "ring") return ring_.run(args.base);
  if (algorithm == "direct") return direct_.run(args.base);
  if (algorithm == "qa2a") return quantized_.run(args);
  if (algorithm == "qring") return codecRing_.run(args);
  if (algorithm == "sparse_ag") return sparse_.run(args, SparseAllreduce::Shape::kAllgather);
  if (algorithm == "sparse_split") return sparse_.run(args, SparseAllreduce::Shape::kSplit);
  if (algorithm == "randk") return randk_.run(args);
  if (algorithm == "gather")
    fail(sqzInvalidUsage, "plan 'gather' runs on device buffers only (host buffers: qa2a, qring, sparse_ag, ...)");
  fail(sqzInternalError, "no flat allreduce algorithm '%s'", algorithm.c_str());
}

}  // namespace sqz
