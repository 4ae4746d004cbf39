#include "collectives/sum_exchange.h"

#include <algorithm>

#include "collectives/peers.h"
#include "kernels/half.h"

namespace sqz {

void SumExchange::start(Transport& transport, uint32_t seq, uint32_t slot, const double* mine, size_t n) {
  transport_ = &transport;
  n_ = n;
  const int size = transport.size(), me = transport.rank();
  all_.assign(static_cast<size_t>(size) * n, 0);
  const double kMax = bf16ToFloat(0x7f7f);  // bfloat16's largest finite value, exact in float
  for (size_t i = 0; i < n; ++i) {
    const double v = mine[i];
    all_[me * n + i] = floatToBf16(static_cast<float>(v != v ? v : std::clamp(v, -kMax, kMax)));
  }
  reqs_.clear();
  postPeerExchange(transport, Tag{seq, slot}, &all_[me * n], all_.data(), wireBytes(n), reqs_);
}

void SumExchange::finish(const Deadline& deadline, double* sum) {
  transport_->waitAll(reqs_, deadline);
  const int size = transport_->size();
  for (size_t i = 0; i < n_; ++i) {
    double s = bf16ToFloat(all_[i]);
    for (int r = 1; r < size; ++r) s += bf16ToFloat(all_[r * n_ + i]);
    sum[i] = s;
  }
  transport_ = nullptr;
}

}  // namespace sqz
