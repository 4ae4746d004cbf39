// The rule for calls that name no error-feedback state
// (src/implicit_states.h): a residual never flows into another tensor, not
// even one that a caching allocator placed at the same address with the
// same count; a named state keeps its residual; and what the communicator
// keeps for implicit calls is bounded.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "harness/rank_threads.h"
#include "harness/reference.h"
#include "src/comm.h"

namespace sqz::test {
namespace {

// Two tensors that share one buffer (the first freed, the second allocated
// at its address with the same count): the second is all zeros, so its sum
// is exactly zero on every element unless something of the first leaks in.
TEST(ImplicitStates, ResidualNeverFlowsIntoAnotherTensorAtTheSameAddress) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const size_t count = 20011;
  for (const char* spec : {"topk:0.01", "q4", "randk:0.05", "@sparse_split:topk:0.01", "@qring:q2"}) {
    for (bool policy : {false, true}) {  // sqzAllReduceEx(spec, NULL) and sqzAllReduce under a policy
      runRanks(2, [&](int rank, sqzComm_t& comm) {
        if (policy) {
          ASSERT_EQ(sqzCommSetCompression(comm, spec), sqzSuccess);
        }
        std::vector<float> buffer = rankGradient(rank, count, 5);  // tensor A
        auto call = [&] {
          return policy ? sqzAllReduce(buffer.data(), buffer.data(), count, sqzFloat32, sqzSum, comm, nullptr)
                        : sqzAllReduceEx(buffer.data(), buffer.data(), count, sqzFloat32, sqzSum, spec, nullptr, comm,
                                         nullptr);
        };
        ASSERT_EQ(call(), sqzSuccess) << sqzGetLastError(comm);
        std::fill(buffer.begin(), buffer.end(), 0.0f);  // tensor B, same address and count
        ASSERT_EQ(call(), sqzSuccess) << sqzGetLastError(comm);
        size_t leaked = 0;
        for (float v : buffer) leaked += v != 0.0f;
        EXPECT_EQ(leaked, 0u) << spec << (policy ? " (policy)" : " (Ex)") << ": " << leaked
                              << " elements of tensor A's residual reached tensor B";
      });
    }
  }
}

// A state the caller names keeps its residual: what the first call left
// out arrives with the next call on that state, even if its input is zero.
TEST(ImplicitStates, NamedStateCarriesItsResidual) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  const size_t count = 20011;
  runRanks(2, [&](int rank, sqzComm_t& comm) {
    sqzState_t state;
    ASSERT_EQ(sqzStateCreate(comm, count, sqzFloat32, &state), sqzSuccess);
    const std::vector<float> g = rankGradient(rank, count, 5);
    std::vector<float> first(count), second(count), zeros(count, 0.0f);
    ASSERT_EQ(sqzAllReduceEx(g.data(), first.data(), count, sqzFloat32, sqzSum, "topk:0.01", state, comm, nullptr),
              sqzSuccess);
    ASSERT_EQ(sqzAllReduceEx(zeros.data(), second.data(), count, sqzFloat32, sqzSum, "topk:0.01", state, comm, nullptr),
              sqzSuccess);
    size_t arrived = 0;
    for (float v : second) arrived += v != 0.0f;
    EXPECT_GT(arrived, count / 200) << "the residual of the first call did not arrive";
    sqzStateDestroy(state);
  });
}

// Implicit calls on ever new shapes keep at most ImplicitStates::kCapacity
// states (of tuning only: never a residual).
TEST(ImplicitStates, WhatImplicitCallsKeepIsBounded) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  runRanks(2, [&](int rank, sqzComm_t& comm) {
    for (size_t i = 0; i < ImplicitStates::kCapacity + 40; ++i) {
      std::vector<float> g(1000 + i, static_cast<float>(rank + 1));
      ASSERT_EQ(sqzAllReduceEx(g.data(), g.data(), g.size(), sqzFloat32, sqzSum, "q8", nullptr, comm, nullptr),
                sqzSuccess);
    }
    EXPECT_EQ(comm->impl->implicitStates(), ImplicitStates::kCapacity);
  });
}

}  // namespace
}  // namespace sqz::test
