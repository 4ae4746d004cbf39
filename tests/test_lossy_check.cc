// Every check of a lossy result (harness/lossy_check.h) shown to reject
// deliberately broken results: a real call's output passes, and the same
// output zeroed, halved, shifted by one element, offset by its rms, or with
// one rank's chunk dropped does not; nor does one with more noise than the
// codec that ran can make.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "harness/compressed_call.h"
#include "harness/lossy_check.h"

namespace sqz::test {
namespace {

// 1-bit codecs need 2^20 elements for a dropped chunk at 8 ranks to stand
// out of their noise (the statistic is ~5 sigma at 100k elements).
size_t countFor(const std::string& plan) {
  return plan.find("q1") != std::string::npos || plan.find("sign") != std::string::npos ? (size_t{1} << 20) + 3
                                                                                         : 100003;
}

class LossyCheckRejects : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(LossyCheckRejects, BrokenOutputs) {
  auto [plan, n] = GetParam();
  CompressedCall run = runCompressedCall(n, plan, countFor(plan));
  const LossyCall call = run.call();
  ASSERT_EQ(checkLossy(run.inputs, run.outputs[0], call), "") << plan;
  for (Breakage b : allBreakages())
    EXPECT_NE(checkLossy(run.inputs, breakOutput(run.outputs[0], b, n), call), "") << breakageName(b) << " passed";
}

std::string name(const ::testing::TestParamInfo<LossyCheckRejects::ParamType>& info) {
  // The count in the name: the ASan run skips the 1M-element cases by it.
  std::string s = std::get<0>(info.param) + "_n" + std::to_string(std::get<1>(info.param)) + "_c" +
                  std::to_string(countFor(std::get<0>(info.param)));
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    AllCodecs, LossyCheckRejects,
    ::testing::Combine(::testing::Values("@qa2a:q8", "@qa2a:q4", "@qa2a:q2", "@qa2a:q1", "@qring:q4", "@qring:q8",
                                         "@qa2a:q4:rn", "@qa2a:q8:block=1024", "@qring:q2:block=64", "@qring:bf16",
                                         "@qa2a:fp16", "@sparse_ag:topk:0.05", "@sparse_split:topk:0.05",
                                         "@sparse_ag:topk:0.01:bf16", "@sparse_split:topk:0.02:int8",
                                         "@randk:randk:0.05", "@randk:randk:0.1:rescale", "@randk:randk:0.05:bf16",
                                         "@gather:sign:rot", "@qa2a:sign:rot"),
                       ::testing::Values(2, 3, 8)),
    name);

// sign:rot's check also rejects every sign flipped.
TEST(LossyCheck, RotatedSignRejectsANegatedOutput) {
  for (const char* plan : {"@gather:sign:rot", "@qa2a:sign:rot"}) {
    CompressedCall run = runCompressedCall(4, plan, 100003);
    ASSERT_EQ(checkLossy(run.inputs, run.outputs[0], run.call()), "") << plan;
    EXPECT_NE(checkLossy(run.inputs, breakOutput(run.outputs[0], Breakage::Negated, 4), run.call()), "") << plan;
  }
}

std::string planAndRanks(const ::testing::TestParamInfo<std::tuple<std::string, int>>& info) {
  std::string s = std::get<0>(info.param) + "_n" + std::to_string(std::get<1>(info.param));
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

// A decoder that skips its last block: the last 256 elements of every
// rank's chunk left zero (~0.5% of 100k elements at 2 ranks, 2% at 8).
// Rejected by the check of every codec but the 1- and 2-bit quantizers:
// their checks of so few elements are statistical, and at 1-2 bits the
// noise hides them (a per-block correlation scan of e against the exact
// sum scored the skipped blocks of q1/q2 at 2 ranks t = 5.6-6.6, where the
// millions of real blocks a CI run checks need a threshold above that).
// Their dropped chunk (DroppedChunk) is rejected.
class LossyCheckRejectsASkippedBlock : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(LossyCheckRejectsASkippedBlock, LastBlockOfEveryChunk) {
  auto [plan, n] = GetParam();
  CompressedCall run = runCompressedCall(n, plan, 100003);
  const LossyCall call = run.call();
  ASSERT_EQ(checkLossy(run.inputs, run.outputs[0], call), "") << plan;
  EXPECT_NE(checkLossy(run.inputs, breakOutput(run.outputs[0], Breakage::SkippedLastBlock, n), call), "")
      << plan << ": " << breakageName(Breakage::SkippedLastBlock) << " passed";
}

INSTANTIATE_TEST_SUITE_P(
    DenseAndSparse, LossyCheckRejectsASkippedBlock,
    ::testing::Combine(::testing::Values("@qa2a:q8", "@qa2a:q4", "@qring:q4", "@qring:q8", "@qa2a:q4:rn",
                                         "@qring:bf16", "@qa2a:fp16", "@sparse_ag:topk:0.05",
                                         "@sparse_split:topk:0.02:int8", "@randk:randk:0.05",
                                         "@randk:randk:0.1:rescale", "@ring"),
                       ::testing::Values(2, 3, 8)),
    planAndRanks);

// A decoder that adds noise of its own (here 1.5x the codec's error
// energy, bounded: uniform) fails the squared-error bound from the codec's
// variance. (That bound is tight to ~2x at 4 and 8 bits; at 1 and 2 bits
// the range of a re-encoded sum is bounded by the worst case of the noise
// already in it, ~3x looser.)
TEST(LossyCheck, ExcessNoiseFailsTheVarianceBound) {
  for (const char* plan : {"@qa2a:q4", "@qring:q8", "@qa2a:q8", "@qring:q4", "@gather:sign:rot"}) {
    CompressedCall run = runCompressedCall(4, plan, 100003);
    ASSERT_EQ(checkLossy(run.inputs, run.outputs[0], run.call()), "") << plan;
    std::vector<float> noisy = run.outputs[0];
    double mse = 0;
    for (size_t i = 0; i < noisy.size(); ++i) {
      double exact = 0;
      for (const auto& y : run.inputs) exact += y[i];
      mse += (noisy[i] - exact) * (noisy[i] - exact) / noisy.size();
    }
    std::mt19937 rng(3);
    const double a = std::sqrt(3 * 1.5 * mse);  // uniform on [-a, a]: variance a^2/3
    std::uniform_real_distribution<double> u(-a, a);
    for (float& x : noisy) x += static_cast<float>(u(rng));
    const std::string why = checkLossy(run.inputs, noisy, run.call());
    EXPECT_NE(why.find("squared error"), std::string::npos) << plan << ": " << why;
  }
}

// Exact results (and the exact path of a lossy spec) are checked to fp32
// rounding; a single ulp-scale slip passes, a one-element error does not.
TEST(LossyCheck, ExactPlansToRounding) {
  CompressedCall run = runCompressedCall(3, "@ring", 5003);
  EXPECT_EQ(run.infos[0].exact, 1);
  EXPECT_EQ(checkLossy(run.inputs, run.outputs[0], run.call()), "");
  std::vector<float> off = run.outputs[0];
  off[17] = std::nextafter(off[17], 1e30f);
  EXPECT_EQ(checkLossy(run.inputs, off, run.call()), "");
  off[17] += 1e-3f;
  EXPECT_NE(checkLossy(run.inputs, off, run.call()), "");
  for (Breakage b : allBreakages())
    EXPECT_NE(checkLossy(run.inputs, breakOutput(run.outputs[0], b, 3), run.call()), "") << breakageName(b);
}

// sqzAvg: the same checks on the sum divided by n.
TEST(LossyCheck, AverageIsCheckedAsTheScaledSum) {
  for (const char* plan : {"@qa2a:q4", "@sparse_ag:topk:0.05", "@randk:randk:0.05", "@qring:bf16"}) {
    CompressedCall run = runCompressedCall(4, plan, 20011, sqzAvg);
    const LossyCall call = run.call(sqzAvg);
    EXPECT_EQ(checkLossy(run.inputs, run.outputs[0], call), "") << plan;
    LossyCall asSum = call;
    asSum.op = sqzSum;
    EXPECT_NE(checkLossy(run.inputs, run.outputs[0], asSum), "") << plan << " passed as a sum";
  }
}

}  // namespace
}  // namespace sqz::test
