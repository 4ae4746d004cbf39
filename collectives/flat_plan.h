// Runs one flat (single-level) allreduce algorithm by registry name on any
// transport: the exact ones ("ring", "direct") or a compressed one
// ("qa2a", "qring", "sparse_ag", "sparse_split", "randk").
#pragma once

#include <string>

#include "collectives/compressed_args.h"
#include "transport/transport.h"

namespace sqz {

// `chunkBytes`: the ring's pipelining chunk. For exact algorithms only
// args.base is used.
void runFlatAllreduce(Transport& transport, const std::string& algorithm, const CompressedArgs& args,
                      size_t chunkBytes);

}  // namespace sqz
