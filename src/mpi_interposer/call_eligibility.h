// Whether sqz may serve an MPI_Allreduce, judged from its arguments alone
// (the communicator's own state is AdoptedComm's to judge). MPI requires
// every rank to pass the same count, datatype and op, so all ranks reach
// the same answer and serve or forward the call together. (MPI also allows
// ranks to pass different datatypes with the same type signature; a rank
// passing a derived type where the others pass MPI_FLOAT would be forwarded
// while they are served, and both sides would wait for each other.)
#pragma once

#include <mpi.h>

#include "sqz.h"
#include "src/mpi_interposer/call_route.h"
#include "src/mpi_interposer/interposer_config.h"

namespace sqz::mpi {

struct AllreduceCall {
  const void* send;  // MPI_IN_PLACE allowed
  void* recv;
  int count;
  MPI_Datatype type;
  MPI_Op op;
  MPI_Comm comm;
};

// kServe (with *type set to the matching sqz type) or why the call goes to MPI.
Route classifyCall(const AllreduceCall& call, const InterposerConfig& config, sqzDataType_t* type);

}  // namespace sqz::mpi
