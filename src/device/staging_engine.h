// Host staging for device buffers over a host transport (UCX): the GPU
// copies what must travel (encoded payloads, so only compressed bytes cross
// PCIe) into pinned host memory, a progress thread moves it between ranks,
// and the GPU copies the answer back, all without the calling thread ever
// waiting for the GPU. Ordering uses CUDA events and one mapped host word:
//
//   caller's stream:  [D2H copies] [staged event] [wait: flag >= ticket] [H2D copies, kernels] [done event]
//   progress thread:  waits for the staged event, runs the host work (the
//                     transfer), then sets flag = ticket (also on failure,
//                     so the stream never hangs; the error is then reported
//                     asynchronously).
//
// Jobs run in submission order. Pinned blocks return to the pool when the
// GPU has passed the job's done event, so reuse never races a copy.
// Graph capture is refused: a captured wait would replay on a stale ticket.
//
// Locking: the mutex guards the queue, the ticket counter and the pool, and
// no CUDA call that can block is made while it is held: a kernel launch
// waits when the launch queue is full, and the GPU work ahead of it may be
// waiting for the progress thread, which needs the mutex before it can
// release the flag. So a job takes its ticket under the mutex and launches
// its wait outside it; pinned memory is allocated outside it too. The CUDA
// calls go through a StagingRuntime table (the real runtime, or a test's).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/env.h"
#include "src/device/staging_runtime.h"

namespace sqz {

class StagingEngine {
 public:
  // Binds to `device` (the progress thread sets it before any CUDA call).
  StagingEngine(int device, const StagingRuntime& runtime);
  // Finishes the host work of every submitted job (bounded by SQZ_TIMEOUT),
  // waits until the GPU has passed every job, then frees the pinned memory.
  ~StagingEngine();
  StagingEngine(const StagingEngine&) = delete;
  StagingEngine& operator=(const StagingEngine&) = delete;

  struct Block {
    void* host = nullptr;
    size_t bytes = 0;
  };
  struct Job;
  using JobPtr = std::shared_ptr<Job>;

  // Pinned host memory of at least `bytes` (reused between calls).
  Block acquire(size_t bytes);
  // Returns a block that no job holds, once the GPU is done with it.
  void giveBack(const Block& block);
  // Enqueues the staged event and the GPU-side wait on `stream`; `hostWork`
  // runs on the progress thread once the GPU reached the staged point. The
  // caller enqueues its device-to-host copies before and its host-to-device
  // copies after, then calls retire(). `blocks` are held until then.
  JobPtr submit(void* stream, std::function<void()> hostWork, std::vector<Block> blocks);
  // Records the job's done event on `stream`; its blocks go back to the
  // pool once the GPU passes it. Call exactly once per submitted job.
  void retire(const JobPtr& job, void* stream);
  // Blocks until the job's host work ran (throws its error, or sqzTimeout).
  void waitHost(const JobPtr& job, const Deadline& deadline);
  // Blocks until the host work of every submitted job ran (throws the first
  // asynchronous error, if any).
  void drain(const Deadline& deadline);
  // The first error of any job's host work, or null.
  std::exception_ptr error() const;
  // Stops: queued work is skipped and every GPU waiter released.
  void abort();

 private:
  void progressLoop();
  void reclaim();  // blocks of retired jobs the GPU has passed go back to the pool (mutex held)
  // Throws sqz::Error(sqzUnhandledCudaError) for a failed runtime call.
  void check(int error, const char* what) const;

  static constexpr size_t kMaxQueued = 64;
  const StagingRuntime& rt_;
  int device_;
  uint32_t* flagHost_ = nullptr;          // mapped pinned word the GPU polls
  volatile uint32_t* flagDevice_ = nullptr;
  uint32_t nextTicket_ = 1;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<JobPtr> queue_;
  std::vector<JobPtr> retired_;
  std::multimap<size_t, Block> free_;
  std::vector<Block> allBlocks_;
  std::exception_ptr error_;
  bool stopping_ = false;
  bool aborting_ = false;
  std::thread thread_;
};

}  // namespace sqz
