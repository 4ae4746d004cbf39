// The NCCL transport against a fake NCCL (a function table recording every
// call, transport/nccl_api.h): who destroys and who aborts the communicator
// (only sqz's own, never an adopted one), and non-blocking communicators
// (ncclInProgress) waited for before a call returns. No GPU or libnccl.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "harness/rank_threads.h"
#include "transport/nccl_transport.h"

namespace sqz::test {
namespace {

// One fake communicator; the table's functions reach it through a global,
// as NCCL's plain C functions carry no context of their own.
struct FakeComm {
  int destroys = 0, aborts = 0, asyncPolls = 0, broadcasts = 0;
  int inProgressPolls = 0;            // commGetAsyncError answers ncclInProgress this many times
  NcclResult settlesOn = kNcclSuccess;  // and then this
  NcclResult broadcastAnswer = kNcclSuccess;
};
FakeComm* g_fake = nullptr;

NcclComm handle() { return reinterpret_cast<NcclComm>(g_fake); }
FakeComm& fake(NcclComm c) {
  EXPECT_EQ(c, handle()) << "a call reached NCCL with another communicator";
  return *g_fake;
}

NcclApi fakeApi() {
  NcclApi a;
  a.commDestroy = [](NcclComm c) { return ++fake(c).destroys, kNcclSuccess; };
  a.commAbort = [](NcclComm c) { return ++fake(c).aborts, kNcclSuccess; };
  a.commCount = [](NcclComm, int* n) { return *n = 4, kNcclSuccess; };
  a.commUserRank = [](NcclComm, int* r) { return *r = 2, kNcclSuccess; };
  a.commCuDevice = [](NcclComm, int* d) { return *d = 0, kNcclSuccess; };
  a.commGetAsyncError = [](NcclComm c, NcclResult* state) {
    FakeComm& f = fake(c);
    ++f.asyncPolls;
    if (f.inProgressPolls > 0) {
      --f.inProgressPolls;
      *state = kNcclInProgress;
    } else {
      *state = f.settlesOn;
    }
    return kNcclSuccess;
  };
  a.getErrorString = [](NcclResult r) { return r == kNcclRemoteError ? "remote process exited" : "some error"; };
  a.getLastError = [](NcclComm) { return ""; };
  a.broadcast = [](const void*, void*, size_t, int, int, NcclComm c, NcclStream) {
    FakeComm& f = fake(c);
    ++f.broadcasts;
    return f.broadcastAnswer;
  };
  return a;
}

class NcclTransportTest : public ::testing::Test {
 protected:
  void SetUp() override { g_fake = &comm_; }
  void TearDown() override { g_fake = nullptr; }
  FakeComm comm_;
  NcclApi api_ = fakeApi();
};

TEST_F(NcclTransportTest, AnOwnedCommunicatorIsDestroyedWithTheTransport) {
  { NcclTransport t(api_, handle(), true); }
  EXPECT_EQ(comm_.destroys, 1);
  EXPECT_EQ(comm_.aborts, 0);
}

TEST_F(NcclTransportTest, AbortingAnOwnedCommunicatorAbortsItOnceAndNeverDestroysIt) {
  {
    NcclTransport t(api_, handle(), true);
    t.abort();
    t.abort();
  }
  EXPECT_EQ(comm_.aborts, 1);
  EXPECT_EQ(comm_.destroys, 0) << "ncclCommAbort already freed it";
}

// Bug: an adopted communicator (the application's, or the interposer's
// ncclComm) was aborted by sqz, and then again by the application's own
// ncclCommAbort: a double free.
TEST_F(NcclTransportTest, AnAdoptedCommunicatorIsNeverAbortedNorDestroyed) {
  {
    NcclTransport t(api_, handle(), false);
    EXPECT_EQ(t.rank(), 2);
    EXPECT_EQ(t.size(), 4);
    t.abort();
    // It is not used any more, either.
    try {
      t.broadcast(nullptr, nullptr, 8, 0, nullptr);
      ADD_FAILURE() << "a call after abort reached NCCL";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), sqzInvalidUsage) << e.what();
    }
  }
  EXPECT_EQ(comm_.aborts, 0);
  EXPECT_EQ(comm_.destroys, 0);
  EXPECT_EQ(comm_.broadcasts, 0);
}

// A non-blocking communicator answers ncclInProgress: the call returns only
// once ncclCommGetAsyncError says the communicator has settled (before, the
// device-to-host copy after ncclBroadcastHostBytes's broadcast could run
// ahead of the broadcast itself).
TEST_F(NcclTransportTest, InProgressIsWaitedForUntilTheCommunicatorSettles) {
  NcclTransport t(api_, handle(), false);
  comm_.asyncPolls = 0;
  comm_.broadcastAnswer = kNcclInProgress;
  comm_.inProgressPolls = 5;
  t.broadcast(nullptr, nullptr, 8, 0, nullptr);
  EXPECT_EQ(comm_.inProgressPolls, 0);
  EXPECT_EQ(comm_.asyncPolls, 6) << "5 polls in progress, then the settled one";
}

TEST_F(NcclTransportTest, InProgressThatSettlesOnAnErrorThrowsIt) {
  NcclTransport t(api_, handle(), false);
  comm_.broadcastAnswer = kNcclInProgress;
  comm_.inProgressPolls = 2;
  comm_.settlesOn = kNcclRemoteError;
  try {
    t.broadcast(nullptr, nullptr, 8, 0, nullptr);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzRemoteError);
    EXPECT_NE(std::string(e.what()).find("ncclBroadcast"), std::string::npos) << e.what();
  }
}

TEST_F(NcclTransportTest, InProgressForeverIsATimeout) {
  ScopedEnv timeout("SQZ_TIMEOUT", "0.2");
  NcclTransport t(api_, handle(), false);
  comm_.broadcastAnswer = kNcclInProgress;
  comm_.inProgressPolls = 1 << 30;
  try {
    t.broadcast(nullptr, nullptr, 8, 0, nullptr);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzTimeout) << e.what();
  }
}

// A communicator still initializing (non-blocking init) is waited for
// before its rank and size are read.
TEST_F(NcclTransportTest, ANonBlockingCommunicatorStillInitializingIsWaitedFor) {
  comm_.inProgressPolls = 3;
  NcclTransport t(api_, handle(), false);
  EXPECT_EQ(comm_.inProgressPolls, 0);
  EXPECT_EQ(t.size(), 4);
}

}  // namespace
}  // namespace sqz::test
