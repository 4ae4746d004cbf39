// The registry of flat (single-level) allreduce algorithms on one
// transport, by the names plans use: exact "ring" and "direct", compressed
// "qa2a", "qring", "sparse_ag", "sparse_split", "randk". One instance per
// transport keeps each algorithm's scratch buffers between calls.
#pragma once

#include <string>

#include "collectives/codec_ring_allreduce.h"
#include "collectives/compressed_args.h"
#include "collectives/direct_allreduce.h"
#include "collectives/quantized_allreduce.h"
#include "collectives/randk_allreduce.h"
#include "collectives/ring_allreduce.h"
#include "collectives/sparse_allreduce.h"
#include "transport/transport.h"

namespace sqz {

class FlatAllreduces {
 public:
  FlatAllreduces(Transport& transport, size_t chunkBytes)
      : ring_(transport, chunkBytes),
        direct_(transport),
        quantized_(transport),
        codecRing_(transport),
        sparse_(transport, ring_),
        randk_(ring_, transport.size()) {}

  // For exact algorithms only args.base is used. Throws on an unknown name.
  void run(const std::string& algorithm, const CompressedArgs& args);
  RingAllreduce& ring() { return ring_; }
  DirectAllreduce& direct() { return direct_; }

 private:
  RingAllreduce ring_;
  DirectAllreduce direct_;
  QuantizedAllreduce quantized_;
  CodecRingAllreduce codecRing_;
  SparseAllreduce sparse_;
  RandkAllreduce randk_;
};

}  // namespace sqz
