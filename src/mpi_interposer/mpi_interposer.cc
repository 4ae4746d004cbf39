// libsqz_mpi.so: MPI programs get sqz's allreduce through the MPI profiling
// interface (DESIGN.md section 4), with LD_PRELOAD or linked before libmpi.
//
// It defines MPI_Allreduce, MPI_Iallreduce, MPI_Init and MPI_Init_thread;
// every other MPI function binds to the MPI library as before. An
// MPI_Allreduce is served by sqz when SQZ_COMPRESSION is set (and not
// "none"), the type is MPI_FLOAT or MPI_DOUBLE, the op MPI_SUM, the buffers
// in host memory and at least SQZ_MIN_BYTES, on an intra-communicator of two
// or more ranks (call_eligibility.h, adopted_comm.h). sqz sums, as MPI does
// (MPI has no averaging op). Everything else goes to PMPI_Allreduce
// unchanged. A served call that fails is reported through the
// communicator's error handler, never retried on MPI: peers may already
// have joined sqz's collective.
//
// MPI_Iallreduce is always forwarded (counted, untouched): serving it would
// need a progress thread and generalized requests, and MPI's own
// non-blocking collective already overlaps with the caller's work.
// MPI_Init and MPI_Init_thread only set up the keyvals and the finalize hook
// (no communication). Open MPI's Fortran bindings call PMPI_Allreduce
// directly, so Fortran callers are never intercepted: their calls reach
// MPI unchanged.
#include <mpi.h>

#include <atomic>
#include <mutex>

#include "common/log.h"
#include "src/mpi_interposer/adopted_comm.h"
#include "src/mpi_interposer/call_eligibility.h"
#include "src/mpi_interposer/call_summary.h"

namespace sqz::mpi {

namespace {

// One INFO line the first time each reason forwards a call, so a run shows
// what was left to MPI without a line per call.
// (Handles are only compared, never passed to MPI: an invalid one is MPI's
// to report, in the forwarded call.)
void noteForwarded(Route why, int count, MPI_Datatype type, MPI_Op op) {
  CallSummary::process().forwarded(why);
  static std::atomic<bool> logged[static_cast<size_t>(Route::kCount)];
  if (logLevel() < LogLevel::kInfo || logged[static_cast<size_t>(why)].exchange(true)) return;
  LogRankScope logRank(AdoptedComm::worldRank());
  SQZ_INFO("libsqz_mpi: forwarding MPI_Allreduce to MPI (%s; first such call: %d elements, %s, %s)", routeName(why),
           count, type == MPI_FLOAT ? "MPI_FLOAT" : type == MPI_DOUBLE ? "MPI_DOUBLE" : "another type",
           op == MPI_SUM ? "MPI_SUM" : "another op");
}

// MPI's answer to a failed served call: the communicator's error handler
// (MPI_ERRORS_ARE_FATAL aborts with this text), then the code.
int reportFailure(MPI_Comm comm) {
  static int code = [] {
    int errorClass = MPI_ERR_OTHER, errorCode = MPI_ERR_OTHER;
    if (PMPI_Add_error_class(&errorClass) == MPI_SUCCESS && PMPI_Add_error_code(errorClass, &errorCode) == MPI_SUCCESS)
      PMPI_Add_error_string(errorCode, const_cast<char*>("MPI_Allreduce served by sqz failed (libsqz_mpi's WARN line on "
                                                         "stderr says why)"));
    return errorCode;
  }();
  PMPI_Comm_call_errhandler(comm, code);
  return code;
}

// A setting sqz refuses fails every call the interposer would serve (as
// sqzCommInitRank fails), rather than forwarding them as if unset.
int reportBadConfig(MPI_Comm comm, const InterposerConfig& config) {
  static std::once_flag once;
  std::call_once(once, [&] {
    logMessage(LogLevel::kWarn, "libsqz_mpi: %s; MPI_Allreduce calls it would serve fail", config.error.c_str());
  });
  CallSummary::process().failed();
  return reportFailure(comm);
}

}  // namespace

}  // namespace sqz::mpi

using sqz::mpi::AdoptedComm;
using sqz::mpi::Route;

extern "C" int MPI_Allreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                             MPI_Comm comm) {
  sqzDataType_t type = sqzFloat32;
  const sqz::mpi::AllreduceCall call{sendbuf, recvbuf, count, datatype, op, comm};
  const sqz::mpi::InterposerConfig& config = sqz::mpi::InterposerConfig::get();
  Route route = sqz::mpi::classifyCall(call, config, &type);
  if (route == Route::kBadConfig) return sqz::mpi::reportBadConfig(comm, config);
  if (route == Route::kServe) {
    AdoptedComm* adopted = AdoptedComm::of(comm);
    sqzResult_t result = sqzSuccess;
    route = adopted ? adopted->allReduce(sendbuf == MPI_IN_PLACE ? recvbuf : sendbuf, recvbuf,
                                         static_cast<size_t>(count), type, &result)
                    : Route::kUnservable;
    if (route == Route::kServe) return result == sqzSuccess ? MPI_SUCCESS : sqz::mpi::reportFailure(comm);
  }
  sqz::mpi::noteForwarded(route, count, datatype, op);
  return PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
}

extern "C" int MPI_Iallreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                              MPI_Comm comm, MPI_Request* request) {
  sqz::mpi::CallSummary::process().forwardedNonblocking();
  return PMPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request);
}

extern "C" int MPI_Init(int* argc, char*** argv) {
  const int r = PMPI_Init(argc, argv);
  if (r == MPI_SUCCESS) AdoptedComm::setUp();
  return r;
}

extern "C" int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  const int r = PMPI_Init_thread(argc, argv, required, provided);
  if (r == MPI_SUCCESS) AdoptedComm::setUp();
  return r;
}
