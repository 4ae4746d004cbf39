#include "collectives/sum_exchange.h"

#include <algorithm>

#include "collectives/peers.h"
#include "common/error.h"
#include "kernels/half.h"

namespace sqz {

size_t SumExchange::start(Transport& transport, uint32_t seq, uint32_t slot, const double* mine, size_t n) {
  SQZ_CHECK(n <= kZeroRunsMaxWords, "a sum exchange of %zu values (at most %zu)", n, kZeroRunsMaxWords);
  transport_ = &transport;
  n_ = n;
  const int size = transport.size(), me = transport.rank();
  all_.assign(static_cast<size_t>(size) * n, 0);
  const double kMax = bf16ToFloat(0x7f7f);  // bfloat16's largest finite value, exact in float
  for (size_t i = 0; i < n; ++i) {
    const double v = mine[i];
    all_[me * n + i] = floatToBf16(static_cast<float>(v != v ? v : std::clamp(v, -kMax, kMax)));
  }
  out_.clear();
  encodeZeroRuns(&all_[me * n], n, &out_);
  const size_t slotWords = maxZeroRunWords(n), bytes = out_.size() * sizeof(uint16_t);
  in_.assign(static_cast<size_t>(size) * slotWords, 0);
  received_.assign(size, bytes);
  reqs_.clear();
  postPeerExchangeUpTo(transport, Tag{seq, slot}, out_.data(), bytes, in_.data(), slotWords * sizeof(uint16_t),
                       received_.data(), reqs_);
  return bytes;
}

void SumExchange::finish(const Deadline& deadline, double* sum) {
  transport_->waitAll(reqs_, deadline);
  const int size = transport_->size(), me = transport_->rank();
  const size_t slotWords = maxZeroRunWords(n_);
  largest_ = 0;
  for (int r = 0; r < size; ++r) {
    largest_ = std::max(largest_, received_[r]);
    if (r == me) continue;
    const bool whole = received_[r] % sizeof(uint16_t) == 0 &&
                       decodeZeroRuns(&in_[r * slotWords], received_[r] / sizeof(uint16_t), &all_[r * n_], n_);
    if (!whole) transport_ = nullptr;
    SQZ_REQUIRE(whole, sqzInvalidUsage, "malformed statistics from rank %d: %zu bytes are not the code of %zu values",
                r, received_[r], n_);
  }
  for (size_t i = 0; i < n_; ++i) {
    double s = bf16ToFloat(all_[i]);
    for (int r = 1; r < size; ++r) s += bf16ToFloat(all_[r * n_ + i]);
    sum[i] = s;
  }
  transport_ = nullptr;
}

}  // namespace sqz
