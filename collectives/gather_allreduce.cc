#include "collectives/gather_allreduce.h"

#include <algorithm>

#include "collectives/allgather.h"
#include "collectives/codec_buffers.h"
#include "collectives/reduce_ops.h"
#include "kernels/cpu_codec.h"

namespace sqz {

void GatherAllreduce::run(const CompressedArgs& a) {
  const AllreduceArgs& b = a.base;
  const int n = transport_.size(), me = transport_.rank();
  const size_t P = encodedBytes(a.codec, b.count);
  CallCounters& c = a.tally();
  gathered_.resize(static_cast<size_t>(n) * P);

  // Mass an owner-side residual still owes (a state that ran qa2a before)
  // goes out with this rank's own encoding of the chunk it owned.
  if (a.residual && a.ownerResidual) {
    const EvenSplit split{b.count, static_cast<size_t>(n)};
    const size_t off = split.offset(me), len = std::min(split.length(me), a.ownerResidualCount);
    for (size_t i = 0; i < len; ++i) {
      a.residual[off + i] += a.ownerResidual[i];
      a.ownerResidual[i] = 0.0f;
    }
  }
  {
    PhaseTimer t(&c.encodeSeconds, "sqz encode");
    encodeCpu(a.codec, chunkEncodeArgs(a, me, 0, b.count, a.step * 2), &gathered_[me * P], P);
  }
  AllGather(transport_).run(&gathered_[me * P], gathered_.data(), P, b.seq, b.deadline);
  c.wireBytes += static_cast<size_t>(bytesSentPerRank(static_cast<double>(P), n));

  out_.resize(b.type == sqzFloat32 ? 0 : b.count);
  float* out = b.type == sqzFloat32 ? static_cast<float*>(b.recv) : out_.data();
  DecodeExpect x;
  x.params = a.codec;
  x.count = b.count;
  x.chunkOffset = 0;
  {
    PhaseTimer t(&c.decodeSeconds, "sqz decode");
    for (int r = 0; r < n; ++r)
      decodeCpu(x, &gathered_[r * P], P, out, r == 0 ? DecodeMode::Overwrite : DecodeMode::Accumulate);
  }
  if (b.op == sqzAvg) divideInPlace(out, sqzFloat32, b.count, n);
  if (b.type != sqzFloat32) storeFloats(out, b.type, 0, b.count, b.recv);
}

}  // namespace sqz
