#include "collectives/randk_allreduce.h"

#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "kernels/cpu_codec.h"

namespace sqz {

double RandkAllreduce::bytesSentPerRank(const CodecParams& codec, size_t count, int n) {
  return RingAllreduce::bytesSentPerRank(4.0 * selectedCount(codec, count), n);
}

void RandkAllreduce::run(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const size_t k = selectedCount(a.codec, b.count);
  CallCounters& c = a.tally();
  values_.resize(k);
  {
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    // The rank is not part of random-K's key: every rank picks the same indices.
    randkGatherCpu(a.codec, chunkEncodeArgs(a, 0, 0, b.count, a.step), values_.data());
  }
  AllreduceArgs ring = b;
  ring.send = ring.recv = values_.data();
  ring.count = k;
  ring.type = sqzFloat32;
  ring.op = sqzSum;
  ring_.run(ring);
  c.wireBytes += static_cast<size_t>(RingAllreduce::bytesSentPerRank(4.0 * k, nranks_));
  out_.assign(b.count, 0.0f);
  {
    PhaseTimer t(&c.decodeSeconds, "sqz decode");
    randkScatterCpu(a.codec, b.count, a.seed, a.step, 0, values_.data(), out_.data(), DecodeMode::Overwrite);
  }
  if (b.op == sqzAvg) divideInPlace(out_.data(), sqzFloat32, b.count, nranks_);
  storeFloats(out_.data(), b.type, 0, b.count, b.recv);
}

}  // namespace sqz
