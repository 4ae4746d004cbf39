// Per-process counts of what the interposer did, for the one-line summary
// that SQZ_DEBUG=INFO prints at MPI_Finalize. Lock-free: calls on different
// communicators may come from different threads.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <string>

#include "src/mpi_interposer/call_route.h"

namespace sqz::mpi {

class CallSummary {
 public:
  // An MPI_Allreduce served by sqz: its bytes, what this rank sent, and
  // what the dense ring would have sent (sqzCallInfo's wireBytes x ratio).
  void served(size_t bytes, size_t wireBytes, double denseBytes);
  void failed() { failed_.fetch_add(1, std::memory_order_relaxed); }  // served, and sqz returned an error
  void forwarded(Route why);
  void forwardedNonblocking() { nonblocking_.fetch_add(1, std::memory_order_relaxed); }

  // "MPI_Allreduce: 12 served by sqz (48.0 MB, 6.1 MB sent, 29.9 MB saved
  // against the dense ring), 3 forwarded (op 2, small 1); MPI_Iallreduce: 0
  // forwarded", with ", N failed" after the served part when any failed.
  std::string line() const;

  static CallSummary& process();

 private:
  std::atomic<unsigned long long> served_{0}, servedBytes_{0}, wireBytes_{0}, denseBytes_{0}, failed_{0},
      nonblocking_{0};
  std::array<std::atomic<unsigned long long>, static_cast<size_t>(Route::kCount)> forwarded_{};
};

}  // namespace sqz::mpi
