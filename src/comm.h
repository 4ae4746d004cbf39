// A communicator: this rank's place in a group, its transport to the peers,
// and the algorithms it runs. Called from one thread at a time (as NCCL's);
// the C API in api.cc is its only caller.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "collectives/direct_allreduce.h"
#include "collectives/ring_allreduce.h"
#include "sqz.h"
#include "src/bootstrap/unique_id.h"
#include "transport/ucx_transport.h"

namespace sqz {

struct CommConfig {
  size_t chunkBytes;      // SQZ_CHUNK_BYTES: pipelining granularity of the ring
  size_t directMaxBytes;  // SQZ_DIRECT_MAX_BYTES: at or below, one-round direct allreduce
  static CommConfig fromEnv();
};

class Communicator {
 public:
  // Collective: forms the group through the rendezvous of `id`.
  Communicator(const BootstrapId& id, int nranks, int rank);
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& nodeId(int rank) const { return nodeIds_[rank]; }

  void allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op);
  void broadcast(const void* send, void* recv, size_t count, sqzDataType_t type, int root);
  void allGather(const void* send, void* recv, size_t count, sqzDataType_t type);
  void barrier();

  void setCompression(const std::string& spec);
  const std::string& compression() const { return compression_; }

  // Stops all communication now; peers' pending operations fail.
  void abort();

  std::string lastError;

 private:
  uint32_t nextSeq() { return seq_++ & 0xffffff; }

  int rank_;
  int size_;
  CommConfig config_;
  std::unique_ptr<UcxTransport> transport_;
  std::vector<std::string> nodeIds_;
  std::unique_ptr<RingAllreduce> ring_;
  std::unique_ptr<DirectAllreduce> direct_;
  std::string compression_ = "none";
  uint32_t seq_ = 0;
};

}  // namespace sqz

// The opaque handle of the C API.
struct sqzComm {
  std::unique_ptr<sqz::Communicator> impl;
};
