#include "collectives/sum_exchange.h"

#include <algorithm>
#include <limits>

#include "collectives/peers.h"

namespace sqz {

void SumExchange::start(Transport& transport, uint32_t seq, uint32_t slot, const double* mine, size_t n) {
  transport_ = &transport;
  n_ = n;
  const int size = transport.size(), me = transport.rank();
  all_.assign(static_cast<size_t>(size) * n, 0.0f);
  constexpr double kMax = std::numeric_limits<float>::max();
  for (size_t i = 0; i < n; ++i) {
    const double v = mine[i];
    all_[me * n + i] = static_cast<float>(v != v ? v : std::clamp(v, -kMax, kMax));
  }
  reqs_.clear();
  postPeerExchange(transport, Tag{seq, slot}, &all_[me * n], all_.data(), wireBytes(n), reqs_);
}

void SumExchange::finish(const Deadline& deadline, double* sum) {
  transport_->waitAll(reqs_, deadline);
  const int size = transport_->size();
  for (size_t i = 0; i < n_; ++i) {
    double s = all_[i];
    for (int r = 1; r < size; ++r) s += all_[r * n_ + i];
    sum[i] = s;
  }
  transport_ = nullptr;
}

}  // namespace sqz
