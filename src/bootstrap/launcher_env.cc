#include "src/bootstrap/launcher_env.h"

#include <cstdlib>

#include "common/error.h"
#include "common/log.h"

namespace sqz {
namespace {

bool readInt(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > (1 << 30)) fail(sqzInvalidArgument, "%s=%s is not a valid number", name, v);
  *out = static_cast<int>(x);
  return true;
}

}  // namespace

LaunchEnv readLaunchEnv() {
  LaunchEnv env;
  if (readInt("RANK", &env.rank) && readInt("WORLD_SIZE", &env.size)) {
    env.launcher = "torchrun";
    readInt("LOCAL_RANK", &env.localRank);
  } else if (readInt("OMPI_COMM_WORLD_RANK", &env.rank) && readInt("OMPI_COMM_WORLD_SIZE", &env.size)) {
    env.launcher = "mpirun";
    readInt("OMPI_COMM_WORLD_LOCAL_RANK", &env.localRank);
  } else if (readInt("SLURM_PROCID", &env.rank) && readInt("SLURM_NTASKS", &env.size)) {
    env.launcher = "slurm";
    readInt("SLURM_LOCALID", &env.localRank);
  } else {
    fail(sqzInvalidUsage,
         "sqzCommInitFromEnv: no launcher environment found (need RANK and WORLD_SIZE, "
         "OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE, or SLURM_PROCID and SLURM_NTASKS)");
  }
  SQZ_REQUIRE(env.size > 0 && env.rank < env.size, sqzInvalidArgument, "%s environment: rank %d of %d",
              env.launcher, env.rank, env.size);

  std::string root = envString("SQZ_ROOT");
  if (!root.empty()) {
    size_t colon = root.rfind(':');
    SQZ_REQUIRE(colon != std::string::npos && colon > 0, sqzInvalidArgument, "SQZ_ROOT=%s is not host:port",
                root.c_str());
    env.rootHost = root.substr(0, colon);
    if (env.rootHost.size() > 2 && env.rootHost.front() == '[' && env.rootHost.back() == ']')
      env.rootHost = env.rootHost.substr(1, env.rootHost.size() - 2);
    env.rootPort = std::atoi(root.c_str() + colon + 1);
  } else {
    int port = -1;
    env.rootHost = envString("MASTER_ADDR");
    SQZ_REQUIRE(!env.rootHost.empty() && readInt("MASTER_PORT", &port), sqzInvalidUsage,
                "sqzCommInitFromEnv (%s): set SQZ_ROOT=host:port, or MASTER_ADDR and MASTER_PORT", env.launcher);
    // torchrun's own TCPStore listens on MASTER_PORT; sqz's root takes the next port.
    env.rootPort = port + 1;
  }
  SQZ_REQUIRE(env.rootPort > 0 && env.rootPort < 65536, sqzInvalidArgument, "rendezvous port %d is out of range",
              env.rootPort);

  std::string secret = envString("SQZ_SECRET");
  env.secretFromUser = !secret.empty();
  if (!env.secretFromUser) {
    // Without a shared secret every rank can only derive one from what all
    // ranks know, so anyone who can reach the port can join (documented).
    secret = "sqz-unauthenticated:" + env.rootHost + ":" + std::to_string(env.rootPort) + ":" +
             std::to_string(env.size);
    SQZ_INFO("SQZ_SECRET is not set: the rendezvous at %s:%d is not authenticated", env.rootHost.c_str(),
             env.rootPort);
  }
  env.secret = secretFromString(secret);
  return env;
}

}  // namespace sqz
