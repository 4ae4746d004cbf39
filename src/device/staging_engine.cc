#include "src/device/staging_engine.h"

#include <atomic>
#include <chrono>

#include "common/error.h"
#include "common/log.h"
#include "common/trace_range.h"

namespace sqz {

struct StagingEngine::Job {
  uint32_t ticket = 0;
  void* staged = nullptr;  // events (cudaEvent_t)
  void* done = nullptr;
  std::function<void()> work;
  std::vector<Block> blocks;
  bool hostDone = false;
  bool retired = false;
  std::exception_ptr error;
};

namespace {
// Pinned blocks come in powers of two from 64 KiB, so buffers of similar
// size share them.
size_t blockSize(size_t bytes) {
  size_t s = 64 << 10;
  while (s < bytes) s <<= 1;
  return s;
}
}  // namespace

void StagingEngine::check(int error, const char* what) const {
  if (error != StagingRuntime::kSuccess) fail(sqzUnhandledCudaError, "%s: %s", what, rt_.errorString(error));
}

StagingEngine::StagingEngine(int device, const StagingRuntime& runtime) : rt_(runtime), device_(device) {
  check(rt_.setDevice(device_), "cudaSetDevice");
  void* flag = nullptr;
  check(rt_.hostAlloc(&flag, sizeof(uint32_t), true), "cudaHostAlloc(flag)");
  flagHost_ = static_cast<uint32_t*>(flag);
  *flagHost_ = 0;
  void* dev = nullptr;
  check(rt_.hostDevicePointer(&dev, flagHost_), "cudaHostGetDevicePointer");
  flagDevice_ = static_cast<volatile uint32_t*>(dev);
  thread_ = std::thread([this] { progressLoop(); });
}

StagingEngine::~StagingEngine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  rt_.setDevice(device_);
  // The GPU may still be copying out of pinned blocks: wait for it.
  for (const JobPtr& j : retired_) {
    if (j->done) rt_.eventSynchronize(j->done);
  }
  for (const JobPtr& j : retired_) {
    if (j->staged) rt_.eventDestroy(j->staged);
    if (j->done) rt_.eventDestroy(j->done);
  }
  for (const Block& b : allBlocks_) rt_.freeHost(b.host);
  if (flagHost_) rt_.freeHost(flagHost_);
}

void StagingEngine::reclaim() {
  for (size_t i = 0; i < retired_.size();) {
    JobPtr& j = retired_[i];
    if (j->hostDone && rt_.eventQuery(j->done) == StagingRuntime::kSuccess) {
      for (const Block& b : j->blocks) free_.emplace(b.bytes, b);
      rt_.eventDestroy(j->staged);
      rt_.eventDestroy(j->done);
      retired_[i] = retired_.back();
      retired_.pop_back();
    } else {
      ++i;
    }
  }
  rt_.clearLastError();  // a not-ready query is not an error
}

StagingEngine::Block StagingEngine::acquire(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reclaim();
    auto it = free_.lower_bound(bytes);
    if (it != free_.end()) {
      Block b = it->second;
      free_.erase(it);
      return b;
    }
  }
  // A new pinned block, allocated without the mutex (see the header).
  Block b;
  b.bytes = blockSize(bytes);
  check(rt_.hostAlloc(&b.host, b.bytes, false), "cudaHostAlloc");
  std::lock_guard<std::mutex> lock(mutex_);
  allBlocks_.push_back(b);
  return b;
}

void StagingEngine::giveBack(const Block& block) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.emplace(block.bytes, block);
}

StagingEngine::JobPtr StagingEngine::submit(void* stream, std::function<void()> hostWork, std::vector<Block> blocks) {
  bool capturing = false;
  check(rt_.streamIsCapturing(stream, &capturing), "cudaStreamIsCapturing");
  SQZ_REQUIRE(!capturing, sqzInvalidUsage,
              "host staging (SQZ_TRANSPORT=ucx) cannot be captured in a CUDA graph; use SQZ_TRANSPORT=nccl");
  auto job = std::make_shared<Job>();
  job->work = std::move(hostWork);
  job->blocks = std::move(blocks);
  check(rt_.eventCreate(&job->staged), "cudaEventCreate");
  check(rt_.eventCreate(&job->done), "cudaEventCreate");
  check(rt_.eventRecord(job->staged, stream), "cudaEventRecord");
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // At most kMaxQueued calls ahead of the transfers (bounds pinned memory).
    const Deadline deadline = Deadline::fromTimeout();
    while (queue_.size() >= kMaxQueued && !error_) {
      SQZ_REQUIRE(!deadline.expired(), sqzTimeout, "device allreduce transfers made no progress within SQZ_TIMEOUT");
      cv_.wait_for(lock, std::chrono::milliseconds(10));
    }
    if (error_) std::rethrow_exception(error_);
    job->ticket = nextTicket_++;
    if (nextTicket_ == 0) nextTicket_ = 1;
    queue_.push_back(job);
  }
  cv_.notify_all();
  // The ticket is taken: the wait is launched without the mutex. The
  // progress thread may already have released this ticket (the wait then
  // passes at once): the flag only grows, in ticket order.
  try {
    rt_.launchWaitFlag(flagDevice_, job->ticket, stream);
  } catch (...) {
    // The call fails here, before its copies back are enqueued; its job
    // still runs on the host, as the peers expect.
    std::lock_guard<std::mutex> lock(mutex_);
    job->blocks.clear();  // never proven free: freed at destruction
    job->retired = true;
    retired_.push_back(job);
    throw;
  }
  return job;
}

void StagingEngine::retire(const JobPtr& job, void* stream) {
  int e = rt_.eventRecord(job->done, stream);
  if (e != StagingRuntime::kSuccess) rt_.clearLastError();
  std::lock_guard<std::mutex> lock(mutex_);
  job->retired = true;
  // Without a done event the blocks can never be proven free: keep them out
  // of the pool (they are freed at destruction). The unrecorded event
  // counts as complete, so the job itself is reclaimed.
  if (e != StagingRuntime::kSuccess) job->blocks.clear();
  retired_.push_back(job);
}

void StagingEngine::waitHost(const JobPtr& job, const Deadline& deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!job->hostDone) {
    SQZ_REQUIRE(!deadline.expired(), sqzTimeout, "a device allreduce's transfer did not finish within SQZ_TIMEOUT");
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
  if (job->error) std::rethrow_exception(job->error);
}

void StagingEngine::drain(const Deadline& deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!queue_.empty()) {
    SQZ_REQUIRE(!deadline.expired(), sqzTimeout, "device allreduces did not finish within SQZ_TIMEOUT");
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
  if (error_) std::rethrow_exception(error_);
}

std::exception_ptr StagingEngine::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

void StagingEngine::abort() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    aborting_ = true;
  }
  cv_.notify_all();
}

void StagingEngine::progressLoop() {
  rt_.setDevice(device_);
  std::unique_lock<std::mutex> lock(mutex_);
  Deadline stopDeadline(0.0);  // set once stopping: queued work gets SQZ_TIMEOUT to start
  bool haveStopDeadline = false;
  for (;;) {
    cv_.wait(lock, [&] { return !queue_.empty() || stopping_ || aborting_; });
    if (queue_.empty()) break;  // stopping with nothing left
    JobPtr job = queue_.front();
    lock.unlock();
    // The GPU reaches the staged point when the caller's stream gets there.
    std::exception_ptr err;
    int spins = 0;
    // Bounded too: a stream that never gets there (blocked, or ranks of one
    // process sharing the legacy default stream, where one rank's wait
    // blocks the other's copy) becomes an error, not a hang.
    const Deadline reachDeadline = Deadline::fromTimeout();
    for (;;) {
      const int q = rt_.eventQuery(job->staged);
      if (q == StagingRuntime::kSuccess) break;
      if (q != StagingRuntime::kNotReady) {
        err = std::make_exception_ptr(
            Error(sqzUnhandledCudaError, formatString("waiting for the stream: %s", rt_.errorString(q))));
        rt_.clearLastError();
        break;
      }
      {
        std::lock_guard<std::mutex> g(mutex_);
        if (aborting_) {
          err = std::make_exception_ptr(Error(sqzRemoteError, "communicator aborted"));
        } else if (stopping_) {
          if (!haveStopDeadline) stopDeadline = Deadline::fromTimeout(), haveStopDeadline = true;
          if (stopDeadline.expired())
            err = std::make_exception_ptr(
                Error(sqzTimeout, "communicator destroyed while a stream had not reached its allreduce"));
        }
      }
      if (!err && reachDeadline.expired())
        err = std::make_exception_ptr(Error(
            sqzTimeout, "the stream did not reach a device allreduce within SQZ_TIMEOUT (a blocked stream? ranks "
                        "sharing a GPU need their own streams, not the legacy default stream)"));
      if (err) break;
      if (++spins < 100) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(spins < 1000 ? 20 : 200));
    }
    {
      std::lock_guard<std::mutex> g(mutex_);
      if (!err && error_) err = error_;  // after a failure, later jobs do not touch the transport
    }
    if (!err) {
      try {
        TraceRange range("sqz transfer (staged)");
        job->work();
      } catch (...) {
        err = std::current_exception();
      }
    }
    // Release the GPU, success or not.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    *reinterpret_cast<volatile uint32_t*>(flagHost_) = job->ticket;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    lock.lock();
    job->work = nullptr;
    job->error = err;
    job->hostDone = true;
    if (err && !error_) error_ = err;
    queue_.pop_front();
    cv_.notify_all();
  }
}

}  // namespace sqz
