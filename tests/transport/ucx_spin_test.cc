// Whether a UCX wait spins or yields at once depends on how many ranks share
// this machine's cores (the communicator counts them by kernel boot id, so a
// namespace testbed's one-rank "nodes" on one host count together).
#include <gtest/gtest.h>

#include "transport/ucx_transport.h"

namespace {

TEST(UcxSpin, YieldsAtOnceWhenRanksOutnumberCores) {
  EXPECT_EQ(sqz::defaultSpinPolls(4, 2), 1u);
  EXPECT_EQ(sqz::defaultSpinPolls(3, 2), 1u);
  EXPECT_EQ(sqz::defaultSpinPolls(17, 16), 1u);
}

TEST(UcxSpin, SpinsWhileRanksFitTheCores) {
  EXPECT_GT(sqz::defaultSpinPolls(2, 2), 1u);
  EXPECT_GT(sqz::defaultSpinPolls(1, 2), 1u);
  EXPECT_GT(sqz::defaultSpinPolls(16, 16), 1u);
}

}  // namespace
