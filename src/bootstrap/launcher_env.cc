#include "src/bootstrap/launcher_env.h"

#include <cstdlib>
#include <mutex>

#include "common/error.h"
#include "common/log.h"
#include "common/strict_number.h"

namespace sqz {
namespace {

bool readInt(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  *out = static_cast<int>(envUnsigned(name, 0, 0, 1 << 30));
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
    uint64_t port = 0;
    SQZ_REQUIRE(parseUnsigned(root.c_str() + colon + 1, 65535, &port) && port > 0, sqzInvalidArgument,
                "SQZ_ROOT=%s: expected host:port with a port from 1 to 65535", root.c_str());
    env.rootPort = static_cast<int>(port);
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
    // Printed whatever SQZ_DEBUG says, once per process: a job open to
    // anyone who can reach the port must not look like a secured one.
    static std::once_flag warned;
    std::call_once(warned, [&] {
      logMessage(LogLevel::kWarn,
                 "SQZ_SECRET is not set: the rendezvous at %s:%d admits anyone who can reach that port (the secret "
                 "is derived from the address and world size); set SQZ_SECRET to the same random string on every "
                 "rank on a shared network",
                 env.rootHost.c_str(), env.rootPort);
    });
  }
  env.secret = secretFromString(secret);
  return env;
}

}  // namespace sqz
