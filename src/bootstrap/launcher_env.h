// Rank, size and rendezvous from a launcher's environment: torchrun,
// Open MPI's mpirun, SLURM (srun), or sqz's own Python launcher (which sets
// torchrun's variables).
#pragma once

#include <string>

#include "src/bootstrap/unique_id.h"

namespace sqz {

struct LaunchEnv {
  const char* launcher = "";  // "torchrun", "mpirun", "slurm"
  int rank = -1;
  int size = -1;
  int localRank = -1;
  std::string rootHost;  // where rank 0 serves the rendezvous
  int rootPort = -1;
  Secret secret{};
  bool secretFromUser = false;  // SQZ_SECRET was set
};

// Throws sqzInvalidUsage naming what is missing when no launcher
// environment is complete.
LaunchEnv readLaunchEnv();

}  // namespace sqz
