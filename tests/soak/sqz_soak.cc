// A bounded soak of the library under a random load, with every result
// checked, memory and file descriptors watched, and (--fault) a rank
// killed at a random moment.
//
//   sqz_soak [--seconds S | --minutes M] [--ranks 4] [--seed X] [--fault] [--max-count N]
//
// The driver starts `ranks` processes of this program (--rank R), which
// form a communicator from the environment (RANK, WORLD_SIZE, SQZ_ROOT)
// and then, call after call, draw the same random mix from (seed, call)
// (soak_load.h): allreduce of 1 element to 16 Mi, float32/16/bf16 sums and
// averages with any codec, auto, a forced plan or the communicator's
// policy, in place or not, with a fresh sqzState (created and destroyed
// around the call) or none; exact allreduces of other types and ops;
// broadcast, allgather, barrier; policy changes; and the communicator
// destroyed and formed again (rank 0 makes a new unique id and broadcasts
// it over the old one), at random and every ~1/30 of the run.
// Results are bitwise identical on all ranks (hashes allgathered), and one
// rank per call (in turn) checks each against the fp64 reference: the
// bound of the codec that ran for lossy calls (harness/lossy_check.h),
// exact references otherwise. Each time the communicator is down, each
// rank samples its RSS and open descriptors; after the warm-up (the first
// third of the run) both must stay flat (soak_rank.cc says how flat).
//
// --fault: at a random moment in the middle of the run the driver
// SIGKILLs a random rank; every other rank's next library call must fail
// (sqzRemoteError or sqzTimeout) within SQZ_TIMEOUT (5 s here), none may
// hang or fail before the kill; then a fresh set of processes forms a new
// communicator and soaks for a few seconds. Calls are of at most 1 Mi
// elements here unless --max-count says otherwise.
//
// --inject wrong|leak|fd (test-only, for the ctest cases that show the
// soak's checks fail): every checked lossy result is offset before its
// check; or each rank leaks 8 MiB, or 4 descriptors, at each sample.
// --max-count N caps the calls' sizes (the leak cases: short steps, so a
// loaded machine still takes enough samples in their 15 s).
//
// Exit code 0 when everything held, 1 otherwise (soak_rank.h lists the
// ranks' exit codes, which the driver prints).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "soak/soak_rank.h"

extern char** environ;

namespace {

using sqz::soak::RankOptions;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
Clock::time_point plusSeconds(Clock::time_point t, double s) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

struct Options {
  RankOptions run;  // what every rank is told (its rank aside)
  int ranks = 4;
  bool isRank = false;  // --rank R: this process is rank R
};

[[noreturn]] void usage(const char* self) {
  std::fprintf(stderr,
               "usage: %s [--seconds S | --minutes M] [--ranks N] [--seed X] [--fault] [--inject wrong|leak|fd] "
               "[--max-count N]\n",
               self);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  bool maxCountGiven = false;
  o.run.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0]);
      return argv[++i];
    };
    if (a == "--seconds") o.run.seconds = std::atof(next().c_str());
    else if (a == "--minutes") o.run.seconds = 60 * std::atof(next().c_str());
    else if (a == "--ranks") o.ranks = std::atoi(next().c_str());
    else if (a == "--seed") o.run.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--fault") o.run.fault = true;
    else if (a == "--inject") o.run.inject = next();
    else if (a == "--max-count") o.run.maxCount = std::strtoull(next().c_str(), nullptr, 10), maxCountGiven = true;
    else if (a == "--no-flat-check") o.run.judgeFlat = false;
    else if (a == "--rank") o.isRank = true, o.run.rank = std::atoi(next().c_str());
    else usage(argv[0]);
  }
  // A fault run's SQZ_TIMEOUT is 5 s, and a rank checking a result is not
  // in a call while the others wait in the next: calls of at most 1 Mi keep
  // that well under 5 s on a loaded machine (a 16 Mi check took 6 s).
  if (o.run.fault && !maxCountGiven) o.run.maxCount = size_t{1} << 20;
  if (o.ranks < 2 || !(o.run.seconds > 0) || o.run.maxCount == 0) {
    std::fprintf(stderr, "need --ranks >= 2, a positive duration and --max-count >= 1\n");
    std::exit(2);
  }
  if (!o.run.inject.empty() && o.run.inject != "wrong" && o.run.inject != "leak" && o.run.inject != "fd") usage(argv[0]);
  return o;
}

// ---------------------------------------------------------------- driver

// A port that is free now, below the ephemeral range (as test_processes);
// drawn apart from the run's seed, so runs with the same seed side by side
// do not meet.
int freePort() {
  static std::mt19937_64 rng(std::random_device{}());
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = 10000 + static_cast<int>(rng() % 22000);
    std::string cmd = "ss -Hltn sport = :" + std::to_string(port) + " 2>/dev/null | grep -q .";
    if (std::system(cmd.c_str()) != 0) return port;
  }
  return 10000 + static_cast<int>(rng() % 22000);
}

struct Job {
  std::vector<pid_t> pids;
  std::vector<int> codes;  // -1 while running
};

const char* exitName(int code) {
  using namespace sqz::soak;
  switch (code) {
    case kRankDone: return "done";
    case kRankWrong: return "a wrong result";
    case kRankNotFlat: return "memory or descriptors grew";
    case kRankUnjudged: return "too few samples to judge memory and descriptors";
    case kRankPeerFailed: return "failed on the dead peer within SQZ_TIMEOUT";
    case kRankPeerFailedLate: return "failed on the dead peer, later than SQZ_TIMEOUT";
    case 1000: return "hung; killed";
    case 1001: return "stopped after another rank failed";
    default: return code > kRankCallFailed && code < kRankCallFailed + 20 ? "a call failed" : "crashed or exited";
  }
}

// `run` for each rank; SQZ_TIMEOUT `timeout` seconds.
Job spawnRanks(const RankOptions& run, int ranks, int port, const char* timeout) {
  Job job;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (int r = 0; r < ranks; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(ranks));
    env.push_back("SQZ_ROOT=127.0.0.1:" + std::to_string(port));
    env.push_back("SQZ_SECRET=soak-" + std::to_string(port) + "-" + std::to_string(getpid()));
    env.push_back(std::string("SQZ_TIMEOUT=") + timeout);
    env.push_back("UCX_WARN_UNUSED_ENV_VARS=n");
    std::vector<std::string> args{self, "--rank", std::to_string(r), "--seconds", std::to_string(run.seconds),
                                  "--ranks", std::to_string(ranks), "--seed", std::to_string(run.seed),
                                  "--max-count", std::to_string(run.maxCount)};
    if (run.fault) args.push_back("--fault");
    if (!run.judgeFlat) args.push_back("--no-flat-check");
    if (!run.inject.empty()) args.insert(args.end(), {"--inject", run.inject});
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) {
      std::perror("posix_spawn");
      std::exit(1);
    }
    job.pids.push_back(pid);
  }
  job.codes.assign(ranks, -1);
  return job;
}

// Reaps what exits until all have, or until `until`; with `stopOnError`,
// kills the rest as soon as one exits with an error (they would wait
// SQZ_TIMEOUT for it; code 1001: stopped). True when all have exited.
bool reapUntil(Job& job, Clock::time_point until, std::vector<double>* exitAt, Clock::time_point t0,
               bool stopOnError = false) {
  for (;;) {
    bool running = false;
    for (size_t r = 0; r < job.pids.size(); ++r) {
      if (job.codes[r] != -1) continue;
      int status = 0;
      if (waitpid(job.pids[r], &status, WNOHANG) == job.pids[r]) {
        job.codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (exitAt) (*exitAt)[r] = secondsSince(t0);
      } else {
        running = true;
      }
    }
    if (!running) return true;
    if (stopOnError && std::any_of(job.codes.begin(), job.codes.end(), [](int c) { return c > 0; })) {
      for (size_t r = 0; r < job.pids.size(); ++r)
        if (job.codes[r] == -1) {
          kill(job.pids[r], SIGKILL);
          waitpid(job.pids[r], nullptr, 0);
          job.codes[r] = 1001;
        }
      return true;
    }
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Kills what still runs (code 1000: hung).
void killHung(Job& job) {
  for (size_t r = 0; r < job.pids.size(); ++r)
    if (job.codes[r] == -1) {
      kill(job.pids[r], SIGKILL);
      waitpid(job.pids[r], nullptr, 0);
      job.codes[r] = 1000;
      std::printf("driver: rank %zu hung; killed\n", r);
    }
}

// A run to its end: every rank must finish cleanly. Returns the failures.
int soakToTheEnd(const RankOptions& run, int ranks, const char* label) {
  const auto t0 = Clock::now();
  Job job = spawnRanks(run, ranks, freePort(), "120");
  // The longest step (a 16 Mi call and its check) is well under a minute.
  if (!reapUntil(job, plusSeconds(t0, run.seconds + 240), nullptr, t0, true)) killHung(job);
  int failures = 0;
  for (int r = 0; r < ranks; ++r)
    if (job.codes[r] != 0) {
      std::printf("driver: %srank %d exited with %d (%s)\n", label, r, job.codes[r], exitName(job.codes[r]));
      ++failures;
    }
  return failures;
}

// Kills a random rank at a random moment between a quarter and three
// quarters of the run: every other rank must fail its next call within
// SQZ_TIMEOUT (5 s; the ranks judge their own calls), none may hang. Then
// new processes form a fresh communicator and soak a little.
int soakWithAKill(const RankOptions& run, int ranks, std::mt19937_64& rng) {
  const auto t0 = Clock::now();
  Job job = spawnRanks(run, ranks, freePort(), "5");
  const double killAt = run.seconds * (0.25 + 0.5 * std::uniform_real_distribution<double>(0, 1)(rng));
  const int victim = static_cast<int>(rng() % ranks);
  std::vector<double> exitAt(ranks, -1);
  reapUntil(job, plusSeconds(t0, killAt), &exitAt, t0);
  const double killedAt = secondsSince(t0);
  int failures = 0;
  if (job.codes[victim] == -1) {
    kill(job.pids[victim], SIGKILL);
    std::printf("driver: killed rank %d at %.2f s\n", victim, killedAt);
  } else {
    std::printf("driver: rank %d, to be killed at %.2f s, had exited already with %d (%s)\n", victim, killedAt,
                job.codes[victim], exitName(job.codes[victim]));
    ++failures;
  }
  std::fflush(stdout);
  // A rank may be in local work (a 16 Mi result's check) when the peer
  // dies; its next call fails. Two minutes without an exit is a hang.
  if (!reapUntil(job, plusSeconds(Clock::now(), 120), &exitAt, t0)) killHung(job);
  // Only a failure after the kill is the dead peer's: one before it (a
  // timeout among live ranks) is a failure of the run.
  for (int r = 0; r < ranks; ++r) {
    if (r == victim) continue;
    const bool before = exitAt[r] < killedAt;
    std::printf("driver: rank %d exited with %d (%s), %.2f s %s the kill\n", r, job.codes[r],
                exitName(job.codes[r]), std::fabs(exitAt[r] - killedAt), before ? "BEFORE" : "after");
    if (job.codes[r] != sqz::soak::kRankPeerFailed || before) ++failures;
  }
  RankOptions fresh = run;
  fresh.fault = false;
  fresh.judgeFlat = false;
  fresh.seconds = std::min(run.seconds, 15.0);
  fresh.seed = run.seed + 1;
  const int freshFailures = soakToTheEnd(fresh, ranks, "fresh ");
  std::printf("driver: a fresh communicator of %d new processes %s\n", ranks,
              freshFailures ? "did not complete its run" : "formed and completed its run");
  return failures + freshFailures;
}

int drive(const Options& o) {
  std::mt19937_64 rng(o.run.seed);
  std::printf("driver: %d ranks, %.0f s, seed %llu%s%s%s\n", o.ranks, o.run.seconds,
              static_cast<unsigned long long>(o.run.seed), o.run.fault ? ", fault: one rank killed" : "",
              o.run.inject.empty() ? "" : ", injected: ", o.run.inject.c_str());
  std::fflush(stdout);
  const auto t0 = Clock::now();
  const int failures = o.run.fault ? soakWithAKill(o.run, o.ranks, rng) : soakToTheEnd(o.run, o.ranks, "");
  std::printf("driver: %s after %.0f s\n", failures ? "FAILED" : "passed", secondsSince(t0));
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.isRank) return sqz::soak::runRank(o.run);
  return drive(o);
}
