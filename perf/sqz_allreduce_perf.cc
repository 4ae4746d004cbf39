// sqz_allreduce_perf: nccl-tests' all_reduce_perf for sqz.
#include "perf/allreduce_test.h"

namespace {

sqzResult_t run(const void* send, void* recv, size_t count, sqzDataType_t t, sqzRedOp_t op,
                const sqz::perf::Env& env) {
  return sqzAllReduce(send, recv, count, t, op, env.comm, env.stream);
}

}  // namespace

int main(int argc, char** argv) {
  return sqz::perf::runPerf(argc, argv, sqz::perf::allreduceTest("allreduce", run));
}
