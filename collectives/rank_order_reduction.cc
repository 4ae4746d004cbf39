#include "collectives/rank_order_reduction.h"

#include "collectives/reduce_ops.h"
#include "common/dtype.h"

namespace sqz {

void RankOrderReduction::run(const std::vector<const unsigned char*>& parts, const AllreduceArgs& a) {
  const int n = static_cast<int>(parts.size());
  const sqzDataType_t accType = accumulationType(a.type);
  const size_t accBytes = a.count * dataTypeSize(accType);
  // Straight into the output when the type needs no widening and writing
  // the output cannot clobber a part not yet read (only parts[0], read
  // first, may be the output); else into an accumulator, then the output once.
  const bool widened = accType != a.type;
  bool intoOutput = !widened && n > 1;
  for (int r = 1; r < n && intoOutput; ++r) intoOutput = parts[r] != a.recv;
  unsigned char* acc = static_cast<unsigned char*>(a.recv);
  int next = 1;
  if (intoOutput) {
    reduceTo(acc, parts[0], parts[1], a.count, accType, a.op);
    next = 2;
  } else {
    acc_.resize(accBytes);
    acc = acc_.data();
    widen(parts[0], a.type, acc, a.count);
  }
  wide_.resize(widened ? accBytes : 0);
  for (int r = next; r < n; ++r) {
    const unsigned char* src = parts[r];
    if (widened) {
      widen(src, a.type, wide_.data(), a.count);
      src = wide_.data();
    }
    reduceInto(acc, src, a.count, accType, a.op);
  }
  if (a.op == sqzAvg) divideInPlace(acc, accType, a.count, n);
  if (!intoOutput) narrow(acc, a.type, a.recv, a.count);
}

}  // namespace sqz
