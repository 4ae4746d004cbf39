// The flat (single-level) allreduce algorithms on one transport, each made
// on first use and kept, with its scratch buffers, between calls. Which
// algorithm a plan's name means, and how it runs here, is the algorithm
// table's (src/tuner/algorithm_table.h): this only holds the instances.
#pragma once

#include <memory>
#include <typeindex>
#include <utility>
#include <vector>

#include "collectives/compressed_args.h"
#include "collectives/direct_allreduce.h"
#include "collectives/ring_allreduce.h"
#include "collectives/shm_segment.h"
#include "transport/transport.h"

namespace sqz {

class FlatAllreduces {
 public:
  FlatAllreduces(Transport& transport, size_t chunkBytes)
      : transport_(transport), chunkBytes_(chunkBytes), ring_(transport, chunkBytes), direct_(transport) {}

  Transport& transport() const { return transport_; }
  // The rings' pipelining granularity (SQZ_CHUNK_BYTES).
  size_t chunkBytes() const { return chunkBytes_; }
  // The exact algorithms, which the exact path and other algorithms use.
  RingAllreduce& ring() { return ring_; }
  DirectAllreduce& direct() { return direct_; }
  // The communicator's shared segment (null: its ranks span nodes, or it
  // could not be mapped); not owned.
  ShmSegment* segment() const { return segment_; }
  void setSegment(ShmSegment* segment) { segment_ = segment; }
  // The one instance of algorithm A here, made from `args` on first use.
  template <typename A, typename... Args>
  A& get(Args&&... args) {
    for (auto& [type, instance] : others_)
      if (type == std::type_index(typeid(A))) return *static_cast<A*>(instance.get());
    others_.emplace_back(std::type_index(typeid(A)), std::make_shared<A>(std::forward<Args>(args)...));
    return *static_cast<A*>(others_.back().second.get());
  }

 private:
  Transport& transport_;
  size_t chunkBytes_;
  RingAllreduce ring_;
  DirectAllreduce direct_;
  ShmSegment* segment_ = nullptr;
  std::vector<std::pair<std::type_index, std::shared_ptr<void>>> others_;
};

// How a plan's algorithm runs on a flat group (an algorithm table entry's
// run): the compressed arguments; exact algorithms read only args.base.
using FlatRun = void (*)(FlatAllreduces& flat, const CompressedArgs& args);

}  // namespace sqz
