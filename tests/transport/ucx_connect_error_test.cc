// A peer that dies while the others connect (the soak's killed rank, once
// caught inside a re-formation's sqzCommInitRank) must fail the connect as
// a dead peer, sqzRemoteError, the code a user's job restarts on; it was
// sqzSystemError, which reads as this process's own fault.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "common/error.h"
#include "transport/ucx_transport.h"

namespace {

using sqz::UcxTransport;

TEST(UcxConnectError, APeersSideGoneIsARemoteError) {
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_SHMEM_SEGMENT), sqzRemoteError);
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_UNREACHABLE), sqzRemoteError);
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_CONNECTION_RESET), sqzRemoteError);
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_REJECTED), sqzRemoteError);
}

TEST(UcxConnectError, ThisProcesssOwnTroubleIsASystemError) {
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_NO_MEMORY), sqzSystemError);
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_NO_RESOURCE), sqzSystemError);
  EXPECT_EQ(sqz::endpointCreateResult(UCS_ERR_INVALID_PARAM), sqzSystemError);
}

// Two ranks of one node exchange addresses; rank 0's worker is destroyed
// before rank 1 connects, as a killed process's would be.
TEST(UcxConnectError, ConnectingToAPeerThatIsGoneFailsAsARemoteError) {
  auto gone = std::make_unique<UcxTransport>(0, 2);
  auto here = std::make_unique<UcxTransport>(1, 2);
  const std::vector<std::vector<uint8_t>> addresses{gone->localAddress(), here->localAddress()};
  gone.reset();
  try {
    here->connect(addresses, {true, true}, 2);
    FAIL() << "connect to a destroyed worker succeeded";
  } catch (const sqz::Error& e) {
    EXPECT_EQ(e.code(), sqzRemoteError) << e.what();
  }
}

}  // namespace
