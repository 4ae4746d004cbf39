// One sqz communicator per MPI communicator. Made lazily, on the first call
// sqz serves there: rank 0's unique id goes out with PMPI_Bcast, and the
// ranks agree (PMPI_Allreduce, MIN) that every one of them has the same
// configuration and a working sqz communicator, or else all of them forward
// that communicator's calls from then on. The entry is cached on the MPI
// communicator under an attribute keyval (not copied by MPI_Comm_dup: a
// duplicate gets its own), and its delete callback destroys the sqz
// communicator when MPI_Comm_free frees the MPI one. At MPI_Finalize a
// callback on MPI_COMM_SELF, which MPI runs first thing in MPI_Finalize,
// destroys those still alive and logs the summary.
//
// Threads: calls on different communicators run concurrently (each entry
// has its own lock); calls on one communicator are serialized, which MPI
// already requires of collectives on one communicator.
#pragma once

#include <mpi.h>

#include <mutex>

#include "sqz.h"
#include "src/mpi_interposer/call_route.h"

namespace sqz::mpi {

class AdoptedComm {
 public:
  // Creates the keyvals and hooks the finalize callback, once (thread-safe;
  // local, no communication). False when MPI refused: nothing is served.
  static bool setUp();

  // comm's entry, made and cached on first use; null if MPI's attribute
  // calls failed (the call is then forwarded).
  static AdoptedComm* of(MPI_Comm comm);

  // This process's rank in MPI_COMM_WORLD, for log lines (-1 before setUp).
  static int worldRank();

  // Serves one sum on host memory through the library's implicit-state path
  // (sqzAllReduce under the communicator's SQZ_COMPRESSION policy), adopting
  // the communicator first when this is its first served call. Returns
  // Route::kServe with *result set to sqz's status, or why the call must go
  // to MPI instead (every rank gets the same answer).
  Route allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzResult_t* result);

 private:
  explicit AdoptedComm(MPI_Comm comm) : comm_(comm) {}
  bool adopt();                     // collective over comm_; mu_ held
  void release(const char* event);  // destroys the sqz communicator, if any
  void logFirstServed();

  static int onCommFree(MPI_Comm comm, int keyval, void* attribute, void* extra);
  static int onFinalize(MPI_Comm comm, int keyval, void* attribute, void* extra);

  const MPI_Comm comm_;
  std::mutex mu_;
  sqzComm_t sqz_ = nullptr;
  Route unservable_ = Route::kServe;  // anything else: forward with this reason
  bool loggedServed_ = false;
};

}  // namespace sqz::mpi
