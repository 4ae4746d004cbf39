// The host-staging engine's locking against a fake CUDA runtime
// (src/device/staging_runtime.h): a kernel launch that blocks (a full launch
// queue) and a pinned allocation that blocks (an implicitly synchronizing
// call) both wait for the GPU to pass an earlier job's wait, which needs the
// progress thread to release the flag, which needs the engine's mutex. Made
// under the mutex, either call deadlocks; the fake gives up after a few
// seconds, so the test fails instead of hanging. No GPU.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "common/error.h"
#include "src/device/staging_engine.h"

namespace sqz::test {
namespace {

constexpr int kFakeError = 999;  // cudaErrorUnknown

// The fake device: events are reached once `gpuRunning` is set (until then
// every stream is held up); the flag is plain host memory.
struct FakeGpu {
  std::atomic<bool> gpuRunning{false};
  std::atomic<const volatile uint32_t*> flag{nullptr};
  std::atomic<int> launches{0}, allocations{0};
  // Launching the wait for this ticket blocks until the flag reaches
  // ticket - 1 (the launch queue drains only as the GPU passes the
  // previous wait); 0: launches never block.
  uint32_t launchBlocksForTicket = 0;
  // Block allocations wait until the flag reaches this (0: never).
  uint32_t allocationWaitsForFlag = 0;
};
FakeGpu* g_gpu = nullptr;

// Waits up to 5 s for the flag to reach `ticket`.
bool flagReaches(uint32_t ticket) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < end) {
    const volatile uint32_t* f = g_gpu->flag.load();
    if (f && *f >= ticket) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

StagingRuntime fakeRuntime() {
  StagingRuntime r;
  r.setDevice = [](int) { return StagingRuntime::kSuccess; };
  r.hostAlloc = [](void** host, size_t bytes, bool mapped) {
    if (!mapped) {
      ++g_gpu->allocations;
      g_gpu->gpuRunning = true;  // the GPU gets to work meanwhile
      if (g_gpu->allocationWaitsForFlag && !flagReaches(g_gpu->allocationWaitsForFlag)) return kFakeError;
    }
    *host = std::calloc(1, bytes);
    return *host ? StagingRuntime::kSuccess : kFakeError;
  };
  r.hostDevicePointer = [](void** device, void* host) {
    *device = host;
    g_gpu->flag = static_cast<const volatile uint32_t*>(host);
    return StagingRuntime::kSuccess;
  };
  r.freeHost = [](void* host) {
    std::free(host);
    return StagingRuntime::kSuccess;
  };
  r.eventCreate = [](void** event) {
    *event = new int(0);
    return StagingRuntime::kSuccess;
  };
  r.eventRecord = [](void*, void*) { return StagingRuntime::kSuccess; };
  r.eventQuery = [](void*) { return g_gpu->gpuRunning ? StagingRuntime::kSuccess : StagingRuntime::kNotReady; };
  r.eventSynchronize = [](void*) { return StagingRuntime::kSuccess; };
  r.eventDestroy = [](void* event) {
    delete static_cast<int*>(event);
    return StagingRuntime::kSuccess;
  };
  r.streamIsCapturing = [](void*, bool* capturing) {
    *capturing = false;
    return StagingRuntime::kSuccess;
  };
  r.launchWaitFlag = [](const volatile uint32_t*, uint32_t ticket, void*) {
    ++g_gpu->launches;
    if (ticket == g_gpu->launchBlocksForTicket) {
      g_gpu->gpuRunning = true;
      if (!flagReaches(ticket - 1)) throw Error(sqzInternalError, "launch blocked for 5 s: deadlock");
    }
  };
  r.clearLastError = [] { return StagingRuntime::kSuccess; };
  r.errorString = [](int) { return "fake CUDA error"; };
  return r;
}

class StagingEngineLocking : public ::testing::Test {
 protected:
  void SetUp() override { g_gpu = &gpu_; }
  void TearDown() override { g_gpu = nullptr; }
  FakeGpu gpu_;
  StagingRuntime rt_ = fakeRuntime();
  void* stream_ = reinterpret_cast<void*>(0x1);
};

TEST_F(StagingEngineLocking, ABlockingLaunchDoesNotHoldUpTheProgressThread) {
  gpu_.launchBlocksForTicket = 2;
  StagingEngine engine(0, rt_);
  std::atomic<int> ran{0};
  auto first = engine.submit(stream_, [&] { ++ran; }, {});
  engine.retire(first, stream_);
  // The second launch blocks until the GPU passes the first wait, that is
  // until the progress thread has run the first job.
  StagingEngine::JobPtr second;
  ASSERT_NO_THROW(second = engine.submit(stream_, [&] { ++ran; }, {}));
  engine.retire(second, stream_);
  engine.drain(Deadline(10));
  EXPECT_EQ(ran, 2);
  EXPECT_EQ(gpu_.launches, 2);
  EXPECT_EQ(*gpu_.flag.load(), 2u);
}

TEST_F(StagingEngineLocking, ABlockingPinnedAllocationDoesNotHoldUpTheProgressThread) {
  gpu_.allocationWaitsForFlag = 1;
  StagingEngine engine(0, rt_);
  std::atomic<int> ran{0};
  auto first = engine.submit(stream_, [&] { ++ran; }, {});
  engine.retire(first, stream_);
  // A new block while the first job waits: the allocation returns only once
  // the first job's flag is out.
  StagingEngine::Block b;
  ASSERT_NO_THROW(b = engine.acquire(1 << 20));
  EXPECT_GE(b.bytes, size_t{1} << 20);
  EXPECT_EQ(gpu_.allocations, 1);
  engine.drain(Deadline(10));
  EXPECT_EQ(ran, 1);
  engine.giveBack(b);
  // Given back, it serves the next request of that size without allocating.
  StagingEngine::Block again = engine.acquire(1 << 20);
  EXPECT_EQ(again.host, b.host);
  EXPECT_EQ(gpu_.allocations, 1);
  engine.giveBack(again);
}

// A transfer that fails still releases the GPU's wait (its ticket), and its
// error comes back from waitHost and error().
TEST_F(StagingEngineLocking, AFailedTransferReleasesTheGpuAndIsReported) {
  gpu_.gpuRunning = true;
  StagingEngine engine(0, rt_);
  auto job = engine.submit(stream_, [] { throw Error(sqzRemoteError, "peer gone"); }, {});
  engine.retire(job, stream_);
  try {
    engine.waitHost(job, Deadline(10));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzRemoteError);
  }
  EXPECT_EQ(*gpu_.flag.load(), 1u) << "the GPU's wait was not released";
  EXPECT_NE(engine.error(), nullptr);
}

}  // namespace
}  // namespace sqz::test
