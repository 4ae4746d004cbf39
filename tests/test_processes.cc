// Ranks as processes: communicators formed from launcher environments
// (torchrun, mpirun, SLURM variables), a stranger at the rendezvous, and a
// rank that dies mid-job.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <random>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "harness/rank_threads.h"
#include "src/bootstrap/rendezvous.h"
#include "src/bootstrap/socket.h"
#include "src/bootstrap/unique_id.h"

extern char** environ;

namespace sqz::test {
namespace {

// A port that is free now, drawn below the kernel's ephemeral range (32768+)
// so that no outgoing connection can take it before the rendezvous binds it.
int freePort() {
  static std::mt19937 rng(static_cast<unsigned>(getpid()) * 7919u + static_cast<unsigned>(time(nullptr)));
  for (int attempt = 0; attempt < 200; ++attempt) {
    int port = 10000 + static_cast<int>(rng() % 22000);
    try {
      SocketAddress any = resolveAddress("127.0.0.1", port), bound;
      Socket s = listenOn(any, &bound);
      return port;
    } catch (const Error&) {
    }
  }
  return 0;
}

// Starts `n` rank processes with per-rank extra environment; returns their
// exit codes (or 128 + signal), killing stragglers after `limitSeconds`.
std::vector<int> runProcesses(int n, const std::vector<std::string>& args,
                              const std::function<std::map<std::string, std::string>(int)>& envFor,
                              double limitSeconds) {
  std::vector<pid_t> pids(n);
  for (int r = 0; r < n; ++r) {
    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string kv(*e);
      size_t eq = kv.find('=');
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (auto& kv : envFor(r)) env[kv.first] = kv.second;
    std::vector<std::string> envStrings;
    for (auto& kv : env) envStrings.push_back(kv.first + "=" + kv.second);
    std::vector<char*> envp, argv;
    for (auto& s : envStrings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string prog = SQZ_RANK_PROCESS;
    argv.push_back(prog.data());
    std::vector<std::string> argsCopy = args;
    for (auto& a : argsCopy) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pids[r], prog.c_str(), nullptr, nullptr, argv.data(), envp.data()), 0);
  }
  std::vector<int> codes(n, -1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limitSeconds);
  int left = n;
  while (left > 0) {
    for (int r = 0; r < n; ++r) {
      if (codes[r] != -1) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --left;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < n; ++r)
        if (codes[r] == -1) {
          kill(pids[r], SIGKILL);
          waitpid(pids[r], nullptr, 0);
          codes[r] = 1000;  // hung
          --left;
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return codes;
}

TEST(Processes, InitFromTorchrunEnvironment) {
  int port = freePort();
  auto codes = runProcesses(3, {"env-allreduce"}, [&](int r) {
    return std::map<std::string, std::string>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "3"},
                                              {"LOCAL_RANK", std::to_string(r)}, {"MASTER_ADDR", "127.0.0.1"},
                                              {"MASTER_PORT", std::to_string(port - 1)}, {"SQZ_SECRET", "s3cret"},
                                              {"SQZ_TIMEOUT", "30"}};
  }, 60);
  for (int c : codes) EXPECT_EQ(c, 0);
}

TEST(Processes, InitFromMpirunAndSlurmEnvironments) {
  int port = freePort();
  auto codes = runProcesses(2, {"env-allreduce"}, [&](int r) {
    return std::map<std::string, std::string>{{"OMPI_COMM_WORLD_RANK", std::to_string(r)},
                                              {"OMPI_COMM_WORLD_SIZE", "2"},
                                              {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                              {"SQZ_TIMEOUT", "30"}};
  }, 60);
  for (int c : codes) EXPECT_EQ(c, 0);
  port = freePort();
  codes = runProcesses(4, {"env-allreduce"}, [&](int r) {
    return std::map<std::string, std::string>{{"SLURM_PROCID", std::to_string(r)}, {"SLURM_NTASKS", "4"},
                                              {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                              {"SQZ_TIMEOUT", "30"}};
  }, 60);
  for (int c : codes) EXPECT_EQ(c, 0);
}

TEST(Processes, MissingLauncherEnvironmentIsAClearError) {
  ScopedEnv a("RANK", nullptr), b("OMPI_COMM_WORLD_RANK", nullptr), c("SLURM_PROCID", nullptr);
  sqzComm_t comm = nullptr;
  EXPECT_EQ(sqzCommInitFromEnv(&comm), sqzInvalidUsage);
  EXPECT_NE(std::string(sqzGetLastError(nullptr)).find("WORLD_SIZE"), std::string::npos);
}

// A rank killed mid-job (no cleanup at all): the others return
// sqzRemoteError or sqzTimeout within SQZ_TIMEOUT.
TEST(Processes, KilledRankFailsTheOthersWithinTimeout) {
  int port = freePort();
  auto start = std::chrono::steady_clock::now();
  auto codes = runProcesses(4, {"die", "2"}, [&](int r) {
    return std::map<std::string, std::string>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "4"},
                                              {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                              {"SQZ_TIMEOUT", "8"}};
  }, 40);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(codes[2], 9);
  for (int r : {0, 1, 3}) EXPECT_EQ(codes[r], 0) << "rank " << r;
  EXPECT_LT(secs, 8 + 10);
}

// The same with UCX peer error handling forced on (as between nodes): the
// failure is reported as a remote error well before the timeout.
TEST(Processes, KilledRankIsDetectedFastWithPeerErrorHandling) {
  int port = freePort();
  auto start = std::chrono::steady_clock::now();
  auto codes = runProcesses(3, {"die", "1"}, [&](int r) {
    return std::map<std::string, std::string>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "3"},
                                              {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                              {"SQZ_UCX_ERR_MODE", "peer"}, {"SQZ_TIMEOUT", "60"}};
  }, 50);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(codes[1], 9);
  for (int r : {0, 2}) EXPECT_EQ(codes[r], 0) << "rank " << r;
  EXPECT_LT(secs, 30);
}

// Two "nodes" of two ranks (SQZ_NODE_ID): hierarchical plans reduce inside
// each node, across nodes per shard, and gather back, exactly or with a
// codec on the inter-node stage; all ranks end bitwise equal.
TEST(Processes, HierarchicalPlansOnTwoNodesOfTwoRanks) {
  struct Case {
    const char* spec;
    const char* plan;
    const char* tol;
  };
  for (Case c : {Case{"@hier/none/ring", "@hier/none/ring", "1e-5"}, Case{"@hier/none/qa2a:q8", "@hier/none/qa2a:q8", "0.05"},
                 Case{"@hier/none/sparse_ag:topk:0.5", "@hier/none/sparse_ag:topk:0.5", "1.0"}}) {
    int port = freePort();
    auto codes = runProcesses(4, {"plan", c.spec, c.plan, c.tol}, [&](int r) {
      return std::map<std::string, std::string>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "4"},
                                                {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                                {"SQZ_NODE_ID", r < 2 ? "nodeA" : "nodeB"},
                                                {"SQZ_MIN_BYTES", "0"}, {"SQZ_TIMEOUT", "60"}};
    }, 90);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(codes[r], 0) << c.spec << " rank " << r;
  }
}

// Strangers at the rendezvous (wrong secret, garbage, silence) are dropped
// and the real ranks still form the communicator.
TEST(Processes, StrangersAtTheRendezvousAreDropped) {
  sqzUniqueId id;
  ASSERT_EQ(sqzGetUniqueId(&id), sqzSuccess);
  BootstrapId bid = BootstrapId::unpack(id);
  Deadline deadline(10);
  // Wrong secret, but otherwise a well-formed hello claiming rank 0.
  BootstrapId wrong = bid;
  wrong.secret[0] ^= 1;
  std::thread impostor([&] {
    EXPECT_THROW(rendezvous(wrong, 0, 2, Blob{1, 2, 3}, Deadline(10)), Error);
  });
  Socket garbage = connectWithRetry(bid.root, deadline);
  const char junk[] = "GET / HTTP/1.1\r\n\r\n";
  garbage.sendAll(junk, sizeof junk, deadline);
  Socket silent = connectWithRetry(bid.root, deadline);
  impostor.join();
  runRanksWithId(2, id, [&](int rank, sqzComm_t& comm) {
    int32_t v = rank + 1;
    ASSERT_EQ(sqzAllReduce(&v, &v, 1, sqzInt32, sqzSum, comm, nullptr), sqzSuccess);
    EXPECT_EQ(v, 3);
  });
}

}  // namespace
}  // namespace sqz::test
