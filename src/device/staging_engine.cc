#include "src/device/staging_engine.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>

#include "common/cuda_check.h"
#include "common/error.h"
#include "common/log.h"
#include "common/trace_range.h"
#include "kernels/cuda_device_ops.h"

namespace sqz {

struct StagingEngine::Job {
  uint32_t ticket = 0;
  cudaEvent_t staged = nullptr;
  cudaEvent_t done = nullptr;
  std::function<void()> work;
  std::vector<Block> blocks;
  bool hostDone = false;
  bool retired = false;
  std::exception_ptr error;
};

namespace {
cudaStream_t asStream(void* s) { return static_cast<cudaStream_t>(s); }

// Pinned blocks come in powers of two from 64 KiB, so buffers of similar
// size share them.
size_t blockSize(size_t bytes) {
  size_t s = 64 << 10;
  while (s < bytes) s <<= 1;
  return s;
}
}  // namespace

StagingEngine::StagingEngine(int device) : device_(device) {
  SQZ_CUDA_OK(cudaSetDevice(device_));
  SQZ_CUDA_OK(cudaHostAlloc(reinterpret_cast<void**>(&flagHost_), sizeof(uint32_t), cudaHostAllocMapped));
  *flagHost_ = 0;
  void* dev = nullptr;
  SQZ_CUDA_OK(cudaHostGetDevicePointer(&dev, flagHost_, 0));
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
  cudaSetDevice(device_);
  // The GPU may still be copying out of pinned blocks: wait for it.
  for (const JobPtr& j : retired_) {
    if (j->done) cudaEventSynchronize(j->done);
  }
  for (const JobPtr& j : retired_) {
    if (j->staged) cudaEventDestroy(j->staged);
    if (j->done) cudaEventDestroy(j->done);
  }
  for (const Block& b : allBlocks_) cudaFreeHost(b.host);
  if (flagHost_) cudaFreeHost(flagHost_);
}

void StagingEngine::reclaim() {
  for (size_t i = 0; i < retired_.size();) {
    JobPtr& j = retired_[i];
    if (j->hostDone && cudaEventQuery(j->done) == cudaSuccess) {
      for (const Block& b : j->blocks) free_.emplace(b.bytes, b);
      cudaEventDestroy(j->staged);
      cudaEventDestroy(j->done);
      retired_[i] = retired_.back();
      retired_.pop_back();
    } else {
      ++i;
    }
  }
  cudaGetLastError();  // a not-ready query is not an error
}

StagingEngine::Block StagingEngine::acquire(size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  reclaim();
  auto it = free_.lower_bound(bytes);
  if (it != free_.end()) {
    Block b = it->second;
    free_.erase(it);
    return b;
  }
  Block b;
  b.bytes = blockSize(bytes);
  SQZ_CUDA_OK(cudaHostAlloc(&b.host, b.bytes, cudaHostAllocDefault));
  allBlocks_.push_back(b);
  return b;
}

StagingEngine::JobPtr StagingEngine::submit(void* stream, std::function<void()> hostWork, std::vector<Block> blocks) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  SQZ_CUDA_OK(cudaStreamIsCapturing(asStream(stream), &capture));
  SQZ_REQUIRE(capture == cudaStreamCaptureStatusNone, sqzInvalidUsage,
              "host staging (SQZ_TRANSPORT=ucx) cannot be captured in a CUDA graph; use SQZ_TRANSPORT=nccl");
  auto job = std::make_shared<Job>();
  job->work = std::move(hostWork);
  job->blocks = std::move(blocks);
  SQZ_CUDA_OK(cudaEventCreateWithFlags(&job->staged, cudaEventDisableTiming));
  SQZ_CUDA_OK(cudaEventCreateWithFlags(&job->done, cudaEventDisableTiming));
  SQZ_CUDA_OK(cudaEventRecord(job->staged, asStream(stream)));
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
    cudaWaitHostFlag(flagDevice_, job->ticket, stream);
    queue_.push_back(job);
  }
  cv_.notify_all();
  return job;
}

void StagingEngine::retire(const JobPtr& job, void* stream) {
  cudaError_t e = cudaEventRecord(job->done, asStream(stream));
  std::lock_guard<std::mutex> lock(mutex_);
  job->retired = true;
  if (e != cudaSuccess) {
    // Without a done event the blocks can never be proven free: keep them
    // out of the pool (they are freed at destruction).
    cudaGetLastError();
    job->blocks.clear();
    cudaEventRecord(job->done, nullptr);
  }
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
  cudaSetDevice(device_);
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
      cudaError_t q = cudaEventQuery(job->staged);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) {
        err = std::make_exception_ptr(Error(sqzUnhandledCudaError, formatString("waiting for the stream: %s",
                                                                                 cudaGetErrorString(q))));
        cudaGetLastError();
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
