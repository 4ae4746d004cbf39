#include "src/mpi_interposer/call_summary.h"

#include "common/error.h"

namespace sqz::mpi {

namespace {

std::string megabytes(double bytes) { return formatString("%.1f MB", bytes / 1e6); }

}  // namespace

void CallSummary::served(size_t bytes, size_t wireBytes, double denseBytes) {
  served_.fetch_add(1, std::memory_order_relaxed);
  servedBytes_.fetch_add(bytes, std::memory_order_relaxed);
  wireBytes_.fetch_add(wireBytes, std::memory_order_relaxed);
  denseBytes_.fetch_add(static_cast<unsigned long long>(denseBytes + 0.5), std::memory_order_relaxed);
}

void CallSummary::forwarded(Route why) {
  forwarded_[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed);
}

std::string CallSummary::line() const {
  unsigned long long total = 0;
  std::string reasons;
  for (size_t i = 0; i < forwarded_.size(); ++i) {
    const unsigned long long n = forwarded_[i].load();
    if (!n) continue;
    total += n;
    reasons += formatString("%s%s %llu", reasons.empty() ? "" : ", ", routeName(static_cast<Route>(i)), n);
  }
  const double wire = static_cast<double>(wireBytes_.load()), dense = static_cast<double>(denseBytes_.load());
  return formatString("MPI_Allreduce: %llu served by sqz (%s, %s sent, %s saved against the dense ring)%s, "
                      "%llu forwarded%s%s%s; MPI_Iallreduce: %llu forwarded",
                      served_.load(), megabytes(static_cast<double>(servedBytes_.load())).c_str(),
                      megabytes(wire).c_str(), megabytes(dense - wire).c_str(),
                      failed_.load() ? formatString(", %llu failed", failed_.load()).c_str() : "", total, reasons.empty() ? "" : " (",
                      reasons.c_str(), reasons.empty() ? "" : ")", nonblocking_.load());
}

CallSummary& CallSummary::process() {
  static auto* summary = new CallSummary();  // outlives static destructors: MPI_Finalize may run from atexit
  return *summary;
}

}  // namespace sqz::mpi
