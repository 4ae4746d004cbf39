// The allreduce's part of a perf binary: the data, the exact results and
// their check, the bus-bandwidth factor and the MPI baseline. Shared by
// sqz_allreduce_perf and the Gloo peer benchmark, which differ only in the
// call they time, so both are checked and reported the same way.
#pragma once

#include "perf/perf_driver.h"

namespace sqz::perf {

using RunFn = sqzResult_t (*)(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op,
                              const Env& env);

CollectiveTest allreduceTest(const char* name, RunFn run);

}  // namespace sqz::perf
