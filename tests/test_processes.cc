// Ranks as processes: communicators formed from launcher environments
// (torchrun, mpirun, SLURM variables), a stranger at the rendezvous, and a
// rank that dies mid-job.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
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

using EnvFor = std::function<std::map<std::string, std::string>(int)>;

// Starts rank process `r` with extra environment; its stderr goes to
// `stderrPath` when given.
pid_t spawnRank(int r, const std::vector<std::string>& args, const EnvFor& envFor, const std::string& stderrPath = "") {
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
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!stderrPath.empty())
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, prog.c_str(), &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// The exit codes of `pids` (or 128 + signal), killing stragglers after
// `limitSeconds` (code 1000: hung).
std::vector<int> waitRanks(const std::vector<pid_t>& pids, double limitSeconds) {
  const size_t n = pids.size();
  std::vector<int> codes(n, -1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limitSeconds);
  size_t left = n;
  while (left > 0) {
    for (size_t r = 0; r < n; ++r) {
      if (codes[r] != -1) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --left;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (size_t r = 0; r < n; ++r)
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

// Starts `n` rank processes with per-rank extra environment; returns their
// exit codes (or 128 + signal), killing stragglers after `limitSeconds`.
std::vector<int> runProcesses(int n, const std::vector<std::string>& args, const EnvFor& envFor,
                              double limitSeconds) {
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) pids.push_back(spawnRank(r, args, envFor));
  return waitRanks(pids, limitSeconds);
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
// codec on each stage (bf16/fp16 inside the node); results within the
// bound of the plan that ran (node sums as the inter stage's inputs), all
// ranks bitwise equal. SQZ_TUNE's plans run as written under auto.
void runHierarchical(const char* spec, const char* expect, const std::map<std::string, std::string>& extraEnv = {},
                     const char* maxWireBytes = nullptr) {
  int port = freePort();
  std::vector<std::string> args{"plan", spec, expect};
  if (maxWireBytes) args.push_back(maxWireBytes);
  auto codes = runProcesses(4, args, [&](int r) {
    std::map<std::string, std::string> env{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "4"},
                                           {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                           {"SQZ_NODE_ID", r < 2 ? "nodeA" : "nodeB"},
                                           {"SQZ_MIN_BYTES", "0"}, {"SQZ_TIMEOUT", "60"}};
    for (const auto& kv : extraEnv) env[kv.first] = kv.second;
    return env;
  }, 90);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(codes[r], 0) << spec << " rank " << r;
}

TEST(Processes, HierarchicalPlansOnTwoNodesOfTwoRanks) {
  for (const char* plan : {"@hier/none/ring", "@hier/none/qa2a:q8", "@hier/none/sparse_ag:topk:0.5",
                           "@hier/none/qring:q4", "@hier/none/randk:randk:0.1"})
    runHierarchical(plan, plan);
}

// Across nodes, auto takes calls from the network's half-bandwidth size up
// (TuneTable::autoFromBytesFor), as rank 0's profile gives it: with a 10
// Mbit/s curve (this machine's, perf/results/train14/profile_10mbit.json)
// an 8 KiB call is auto's to decide and a 2 KiB one stays exact, while
// ranks on one node keep the 64 KiB bound (shm is cheaper than auto's
// statistics there). Auto's decisions are read from SQZ_TUNER_LOG.
TEST(Processes, AcrossNodesAutoDecidesFromTheLinksHalfBandwidthSize) {
  char dir[] = "/tmp/sqz-test-autofrom-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string profile = std::string(dir) + "/profile.json";
  std::ofstream(profile) << R"({"format": "sqz-profile", "version": 1, "fingerprint": "any", "source": "test",
    "links": {"tcp": {"points": [[1024, 1.17e-5], [4096, 3.50e-3], [16384, 1.386e-2], [65536, 5.50e-2],
                                 [262144, 2.197e-1], [1048576, 8.788e-1]]}}})";
  for (bool acrossNodes : {true, false}) {
    const std::string log = std::string(dir) + "/decisions.jsonl";
    std::remove(log.c_str());
    const int port = freePort();
    // 300007 values first: the call that loads the profile (a larger one
    // than the table's bound on any link).
    auto codes = runProcesses(4, {"sizes", "auto", "300007", "2048", "512"}, [&](int r) {
      return std::map<std::string, std::string>{
          {"RANK", std::to_string(r)}, {"WORLD_SIZE", "4"}, {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
          {"SQZ_NODE_ID", acrossNodes ? "node" + std::to_string(r) : "node0"}, {"SQZ_PROFILE", profile},
          {"SQZ_CALIBRATE", "off"}, {"SQZ_TUNER_LOG", log}, {"SQZ_TIMEOUT", "60"}};
    }, 90);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(codes[r], 0) << "rank " << r << (acrossNodes ? " across nodes" : " on one node");
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("\"count\":300007"), std::string::npos) << text;
    EXPECT_EQ(text.find("\"count\":2048") != std::string::npos, acrossNodes) << text;
    EXPECT_EQ(text.find("\"count\":512"), std::string::npos) << text;
    std::remove(log.c_str());
  }
  std::remove(profile.c_str());
  rmdir(dir);
}

// GradStats::planSeconds, which checks a link's idle credit against the
// calls: 4 ranks on 4 nodes, auto on one 20000-value buffer for 60 calls.
// An exchange reports the call before it: the second of a pair follows a
// call that carried statistics, whose bytes share the link and are not in
// the plan's price, so it must report nothing (0); the first of a pair
// after a call without statistics reports that call's time.
TEST(Processes, PlanTimeIsReportedOnlyForCallsWithoutStatistics) {
  char dir[] = "/tmp/sqz-test-plantime-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string profile = std::string(dir) + "/profile.json", log = std::string(dir) + "/decisions.jsonl";
  std::ofstream(profile) << R"({"format": "sqz-profile", "version": 1, "fingerprint": "any", "source": "test",
    "links": {"tcp": {"points": [[1024, 1.17e-5], [4096, 3.50e-3], [16384, 1.386e-2], [65536, 5.50e-2],
                                 [262144, 2.197e-1], [1048576, 8.788e-1]]}}})";
  std::vector<std::string> args{"sizes", "auto", "300007"};
  for (int i = 0; i < 60; ++i) args.push_back("20000");
  const int port = freePort();
  auto codes = runProcesses(4, args, [&](int r) {
    return std::map<std::string, std::string>{
        {"RANK", std::to_string(r)}, {"WORLD_SIZE", "4"}, {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
        {"SQZ_NODE_ID", "node" + std::to_string(r)}, {"SQZ_PROFILE", profile}, {"SQZ_CALIBRATE", "off"},
        {"SQZ_TUNER_LOG", log}, {"SQZ_TIMEOUT", "60"}};
  }, 90);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(codes[r], 0) << "rank " << r;
  // Each line's "count", "calls" and "plan_s", in order.
  std::ifstream in(log);
  int reported = 0, secondOfPair = 0;
  double prevCalls = -10;
  for (std::string line; std::getline(in, line);) {
    auto field = [&](const std::string& name) {
      const size_t at = line.find("\"" + name + "\":");
      return at == std::string::npos ? -1.0 : std::atof(line.c_str() + at + name.size() + 3);
    };
    if (field("count") != 20000) continue;
    const double calls = field("calls"), link = field("plan_s");
    ASSERT_GE(link, 0.0) << line;
    if (calls == prevCalls + 1) {
      ++secondOfPair;
      EXPECT_EQ(link, 0.0) << "the call before carried statistics: " << line;
    } else if (link > 0) {
      ++reported;
    }
    prevCalls = calls;
  }
  EXPECT_GT(secondOfPair, 0);
  EXPECT_GT(reported, 0) << "no call without statistics was timed";
  std::remove(log.c_str());
  std::remove(profile.c_str());
  rmdir(dir);
}

TEST(Processes, HierarchicalPlansWithACastInsideTheNode) {
  // 300007 floats, 2 ranks per node: a shard each way inside the node in
  // bf16 (2 x ~300 KB) and the exact ring between nodes (~600 KB), against
  // 1.8 MB with the intra-node stages exact.
  runHierarchical("@hier/bf16/ring", "@hier/bf16/ring", {}, "1250000");
  for (const char* plan : {"@hier/fp16/qa2a:q4", "@hier/bf16/sparse_split:topk:0.05"}) runHierarchical(plan, plan);
  runHierarchical("auto", "@hier/bf16/qa2a:q8",
                  {{"SQZ_TUNE", "allreduce:0-inf:@hier/bf16/qa2a:q8"}, {"SQZ_CALIBRATE", "off"}});
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

// A stranger flood at the rendezvous: one local client holds 2,000 idle
// connections while another sends garbage as fast as it can, and rank 0's
// process has few file descriptors to spare. The 4 ranks still form their
// communicator well within SQZ_TIMEOUT.
TEST(Processes, StrangerFloodDoesNotStopTheCommunicatorForming) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;  // room for the idle client's 2,000 connections
  setrlimit(RLIMIT_NOFILE, &lim);
  const int port = freePort();
  const SocketAddress root = resolveAddress("127.0.0.1", port);
  std::atomic<bool> stop{false};
  std::atomic<int> idleHeld{0}, garbageSent{0};
  auto connectNonBlocking = [&root] {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&root.storage), root.length);
    return s;
  };
  auto rootListens = [&] {
    while (!stop) {
      try {
        connectWithRetry(root, Deadline(0.05));
        return true;
      } catch (const Error&) {
      }
    }
    return false;
  };
  std::thread idle([&] {
    std::vector<Socket> held;
    if (!rootListens()) return;
    while (!stop && held.size() < 2000) {
      held.push_back(connectNonBlocking());
      idleHeld = static_cast<int>(held.size());
    }
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  std::thread garbage([&] {
    if (!rootListens()) return;
    const char junk[] = "GET / HTTP/1.1\r\nHost: sqz\r\n\r\n";
    while (!stop) {
      Socket s = connectNonBlocking();
      pollfd p{s.fd(), POLLOUT, 0};
      if (::poll(&p, 1, 50) > 0 && ::send(s.fd(), junk, sizeof junk, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) ++garbageSent;
    }
  });
  auto envFor = [&](int r) {
    std::map<std::string, std::string> env{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "4"},
                                           {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                           {"SQZ_SECRET", "flood-test"}, {"SQZ_TIMEOUT", "15"}};
    if (r == 0) env["SQZ_TEST_NOFILE"] = "256";
    return env;
  };
  // Rank 0 (and its root) first; the other ranks once the flood is on.
  std::vector<pid_t> pids{spawnRank(0, {"env-allreduce"}, envFor)};
  for (int i = 0; i < 500 && (idleHeld < 2000 || garbageSent < 100); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto start = std::chrono::steady_clock::now();
  for (int r = 1; r < 4; ++r) pids.push_back(spawnRank(r, {"env-allreduce"}, envFor));
  auto codes = waitRanks(pids, 30);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stop = true;
  idle.join();
  garbage.join();
  std::printf("formed in %.2f s under %d idle connections and %d garbage sends\n", secs, idleHeld.load(),
              garbageSent.load());
  for (int r = 0; r < 4; ++r) EXPECT_EQ(codes[r], 0) << "rank " << r;
  EXPECT_LT(secs, 10.0);
  EXPECT_GE(idleHeld.load(), 2000);
  EXPECT_GT(garbageSent.load(), 0);
}

// Environment init without SQZ_SECRET works, and says at WARN (whatever
// SQZ_DEBUG says), once per process, that anyone who reaches the port can join.
TEST(Processes, InitWithoutSecretWarnsOnce) {
  const int port = freePort();
  char dir[] = "/tmp/sqz-test-warn-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r)
    pids.push_back(spawnRank(r, {"env-allreduce"}, [&](int rank) {
      return std::map<std::string, std::string>{{"RANK", std::to_string(rank)}, {"WORLD_SIZE", "2"},
                                                {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port - 1)},
                                                {"SQZ_SECRET", ""}, {"SQZ_DEBUG", ""}, {"SQZ_TIMEOUT", "20"}};
    }, std::string(dir) + "/rank" + std::to_string(r)));
  auto codes = waitRanks(pids, 40);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(codes[r], 0) << "rank " << r;
    std::ifstream in(std::string(dir) + "/rank" + std::to_string(r));
    int warnings = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find("WARN") != std::string::npos && line.find("SQZ_SECRET is not set") != std::string::npos)
        ++warnings;
    EXPECT_EQ(warnings, 1) << "rank " << r;
    std::remove((std::string(dir) + "/rank" + std::to_string(r)).c_str());
  }
  rmdir(dir);
}

// Rank 0 serves the rendezvous on the address MASTER_ADDR resolves to, not
// on every interface: another local address does not reach it.
TEST(Processes, EnvRendezvousListensOnlyWhereMasterAddrPoints) {
  const int port = freePort();
  auto env = [&](int r) {
    return std::map<std::string, std::string>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"},
                                              {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port - 1)},
                                              {"SQZ_SECRET", "bind-test"}, {"SQZ_TIMEOUT", "20"}};
  };
  std::vector<pid_t> pids{spawnRank(0, {"env-allreduce"}, env)};
  // Wait until rank 0's root listens on 127.0.0.1.
  bool listening = false;
  for (int i = 0; i < 200 && !listening; ++i) {
    try {
      connectWithRetry(resolveAddress("127.0.0.1", port), Deadline(0.05));
      listening = true;
    } catch (const Error&) {
    }
  }
  EXPECT_TRUE(listening);
  // 127.0.0.2 is this host too (all of 127/8 is loopback), but not MASTER_ADDR.
  Socket other(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const SocketAddress elsewhere = resolveAddress("127.0.0.2", port);
  const int rc = ::connect(other.fd(), reinterpret_cast<const sockaddr*>(&elsewhere.storage), elsewhere.length);
  EXPECT_NE(rc, 0) << "the rendezvous also accepts connections to 127.0.0.2";
  pids.push_back(spawnRank(1, {"env-allreduce"}, env));
  auto codes = waitRanks(pids, 40);
  for (int r = 0; r < 2; ++r) EXPECT_EQ(codes[r], 0) << "rank " << r;
}

// Every setting that changes which messages a call sends is agreed in the
// call header: one rank with a different value makes every rank fail the
// first call with sqzInvalidUsage (exit code 15) and a message naming the
// settings, instead of a hang, a vague size error or a silently different plan.
TEST(Processes, SettingsThatShapeMessagesMustMatch) {
  struct Case {
    const char* name;
    const char* value;
  };
  char dir[] = "/tmp/sqz-test-settings-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  for (Case c : {Case{"SQZ_DIRECT_MAX_BYTES", "1M"}, Case{"SQZ_CHUNK_BYTES", "64K"}, Case{"SQZ_MIN_BYTES", "1K"},
                 Case{"SQZ_TUNE", "allreduce:0-inf:@ring"}, Case{"SQZ_TUNE_MODE", "sync"},
                 Case{"SQZ_STATS_EVERY_MAX", "1"}}) {
    const int port = freePort();
    std::vector<pid_t> pids;
    for (int r = 0; r < 2; ++r)
      pids.push_back(spawnRank(r, {"env-allreduce"}, [&](int rank) {
        std::map<std::string, std::string> env{{"RANK", std::to_string(rank)}, {"WORLD_SIZE", "2"},
                                               {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                               {"SQZ_SECRET", "settings-test"}, {"SQZ_TIMEOUT", "10"}};
        if (rank == 1) env[c.name] = c.value;
        return env;
      }, std::string(dir) + "/rank" + std::to_string(r)));
    auto codes = waitRanks(pids, 30);
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(codes[r], 10 + sqzInvalidUsage) << c.name << "=" << c.value << " rank " << r;
      const std::string path = std::string(dir) + "/rank" + std::to_string(r);
      std::ifstream in(path);
      const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_NE(err.find("settings that shape the messages"), std::string::npos)
          << c.name << "=" << c.value << " rank " << r << ": " << err;
      EXPECT_NE(err.find(c.name), std::string::npos) << c.name << " rank " << r << ": " << err;
      std::remove(path.c_str());
    }
  }
  rmdir(dir);
}

// Ranks whose SQZ_SEED differs would draw different random-K indices and
// sum values of different elements: every rank fails instead.
TEST(Processes, DifferentSeedsAreAnErrorOnEveryRank) {
  const int port = freePort();
  auto codes = runProcesses(3, {"plan", "@randk:randk:0.1", "@randk:randk:0.1", "1.0"}, [&](int r) {
    return std::map<std::string, std::string>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "3"},
                                              {"SQZ_ROOT", "127.0.0.1:" + std::to_string(port)},
                                              {"SQZ_SECRET", "seed-test"}, {"SQZ_MIN_BYTES", "0"},
                                              {"SQZ_SEED", r == 2 ? "2" : "1"}, {"SQZ_TIMEOUT", "10"}};
  }, 30);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(codes[r], 10 + sqzInvalidUsage) << "rank " << r;
}

}  // namespace
}  // namespace sqz::test
