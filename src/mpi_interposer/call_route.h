// Where an intercepted MPI call goes: served by sqz, or forwarded to the
// real MPI and why. The same names appear in the SQZ_DEBUG=INFO log and in
// the MPI_Finalize summary.
#pragma once

namespace sqz::mpi {

enum class Route {
  kServe,
  kDisabled,       // SQZ_COMPRESSION unset or "none": the interposer only counts
  kType,           // not MPI_FLOAT / MPI_DOUBLE (or MPIX_C_FLOAT16 where the MPI has it)
  kOp,             // not MPI_SUM
  kSmall,          // below SQZ_MIN_BYTES (count == 0 included)
  kArguments,      // something MPI must judge: negative count, null or overlapping buffers, MPI_COMM_NULL
  kNotIntra,       // an inter-communicator
  kSingleRank,     // nothing to exchange
  kDeviceMemory,   // device or managed memory: MPI_Allreduce must finish before it returns
  kUnservable,     // sqz could not adopt this communicator (logged once)
  kNonblocking,    // MPI_Iallreduce: always forwarded
  kNotInitialized, // before MPI_Init or after MPI_Finalize
  kBadConfig,      // SQZ_MIN_BYTES malformed or SQZ_COMPRESSION refused: the call fails (not forwarded)
  kCount
};

// Short stable name: "type", "op", "small", ...
const char* routeName(Route r);

}  // namespace sqz::mpi
