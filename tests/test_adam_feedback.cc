// Which codecs keep a residual on a named state, by optimizer
// (carriesErrorFeedback, src/tuner/README.md section 7): with SGD every
// lossy codec does; with Adam only those whose error is biased (top-K,
// random-K, the scaled sign), and what such a codec left owed goes out with
// the next call that keeps none.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "harness/rank_threads.h"
#include "harness/reference.h"

namespace sqz::test {
namespace {

constexpr size_t kCount = 20011;

// Nonzero elements of the second of two calls on one state: g, then zeros.
// The second call's input is zero, so anything it delivers is residual.
size_t carriedElements(const char* optimizer, const char* spec) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  std::vector<size_t> carried(2);
  runRanks(2, [&](int rank, sqzComm_t& comm) {
    ASSERT_EQ(sqzCommSetOptimizer(comm, optimizer, 0.9), sqzSuccess);
    sqzState_t state;
    ASSERT_EQ(sqzStateCreate(comm, kCount, sqzFloat32, &state), sqzSuccess);
    const std::vector<float> g = rankGradient(rank, kCount, 5);
    std::vector<float> out(kCount), zeros(kCount, 0.0f);
    ASSERT_EQ(sqzAllReduceEx(g.data(), out.data(), kCount, sqzFloat32, sqzSum, spec, state, comm, nullptr), sqzSuccess)
        << sqzGetLastError(comm);
    ASSERT_EQ(sqzAllReduceEx(zeros.data(), out.data(), kCount, sqzFloat32, sqzSum, spec, state, comm, nullptr),
              sqzSuccess)
        << sqzGetLastError(comm);
    carried[rank] = static_cast<size_t>(std::count_if(out.begin(), out.end(), [](float v) { return v != 0.0f; }));
    sqzStateDestroy(state);
  });
  EXPECT_EQ(carried[0], carried[1]) << "ranks disagree";
  return carried[0];
}

TEST(AdamFeedback, UnbiasedCodecsKeepNoResidualUnderAdam) {
  for (const char* spec : {"q4", "q8", "bf16"}) {
    // SGD: the residual of the first call arrives with the second (this is
    // what the Adam line below could show and must not).
    EXPECT_GT(carriedElements("sgd", spec), kCount / 10) << spec << " under SGD carried nothing";
    EXPECT_EQ(carriedElements("adam", spec), 0u) << spec << " under Adam carried a residual";
  }
}

TEST(AdamFeedback, BiasedCodecsKeepTheirResidualUnderAdam) {
  // Top-K 1% of the residual on 2 ranks: about 2% of the elements.
  for (const char* spec : {"topk:0.01", "sign:rot"}) {
    EXPECT_GT(carriedElements("adam", spec), kCount / 100) << spec << " under Adam dropped its residual";
  }
}

// Top-K leaves most of g owed; a q8 call on zeros that keeps no residual
// must deliver that owed sum (within q8's rounding), and a third call on
// zeros nothing at all. With SGD the third call delivers q8's own residual.
TEST(AdamFeedback, OwedMassGoesOutWithTheNextCallThatKeepsNone) {
  ScopedEnv minBytes("SQZ_MIN_BYTES", "0");
  for (const char* optimizer : {"adam", "sgd"}) {
    runRanks(2, [&](int rank, sqzComm_t& comm) {
      ASSERT_EQ(sqzCommSetOptimizer(comm, optimizer, 0.9), sqzSuccess);
      sqzState_t state;
      ASSERT_EQ(sqzStateCreate(comm, kCount, sqzFloat32, &state), sqzSuccess);
      const std::vector<float> g0 = rankGradient(0, kCount, 5), g1 = rankGradient(1, kCount, 5);
      const std::vector<float>& g = rank == 0 ? g0 : g1;
      std::vector<float> first(kCount), second(kCount), third(kCount), zeros(kCount, 0.0f);
      ASSERT_EQ(sqzAllReduceEx(g.data(), first.data(), kCount, sqzFloat32, sqzSum, "topk:0.01", state, comm, nullptr),
                sqzSuccess);
      ASSERT_EQ(sqzAllReduceEx(zeros.data(), second.data(), kCount, sqzFloat32, sqzSum, "q8", state, comm, nullptr),
                sqzSuccess);
      ASSERT_EQ(sqzAllReduceEx(zeros.data(), third.data(), kCount, sqzFloat32, sqzSum, "q8", state, comm, nullptr),
                sqzSuccess);
      // What top-K left owed, summed: g0 + g1 - first. Each q8 encoding errs
      // by less than its block's step, range / 255, and a block of a rank's
      // residual spans at most 2 max|g|, of the sum 4 max|g|; a coordinate
      // passes one encoding per rank and the owner's of the sum (qa2a; the
      // ring's hops as many): under (2 + 2 * 2) max|g| / 255, taken as 8.
      double maxG = 0, maxOwed = 0, worst = 0;
      for (size_t i = 0; i < kCount; ++i) {
        maxG = std::max({maxG, std::fabs(static_cast<double>(g0[i])), std::fabs(static_cast<double>(g1[i]))});
        const double owed = static_cast<double>(g0[i]) + g1[i] - first[i];
        maxOwed = std::max(maxOwed, std::fabs(owed));
        worst = std::max(worst, std::fabs(second[i] - owed));
      }
      const double bound = 8 * maxG / 255;
      ASSERT_GT(maxOwed, 4 * bound) << "the owed sum is too small for the check to tell it from nothing";
      EXPECT_LE(worst, bound) << optimizer << ": the second call did not deliver what top-K owed";
      const auto nonzero = std::count_if(third.begin(), third.end(), [](float v) { return v != 0.0f; });
      if (std::string(optimizer) == "adam") {
        EXPECT_EQ(nonzero, 0) << "q8 under Adam kept a residual";
      } else {
        EXPECT_GT(nonzero, 0) << "q8 under SGD kept no residual";
      }
      sqzStateDestroy(state);
    });
  }
}

}  // namespace
}  // namespace sqz::test
