// The eager network worker (transport/ucx_transport.h): two transports in
// one process stand for two ranks; whether connect() moves them onto the
// network workers must come out the same on both, and messages below and
// above the eager limit must arrive intact either way.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/error.h"
#include "transport/ucx_transport.h"

namespace {

using sqz::UcxTransport;

struct Pair {
  Pair() = default;
  Pair(Pair&&) = default;
  std::vector<std::unique_ptr<UcxTransport>> ranks;
  // Closing an endpoint flushes it, which needs the peer's progress: both
  // ranks close at once, as separate processes would.
  ~Pair() {
    std::vector<std::thread> closing;
    for (auto& t : ranks) closing.emplace_back([&t] { t.reset(); });
    for (auto& th : closing) th.join();
  }
};

// Two ranks, each offering a network worker or not, connected as one rank
// per node (nodesUnshared) or as two ranks of one node.
Pair connectPair(bool offer0, bool offer1, bool nodesUnshared) {
  Pair p;
  p.ranks.push_back(std::make_unique<UcxTransport>(0, 2, offer0));
  p.ranks.push_back(std::make_unique<UcxTransport>(1, 2, offer1));
  const std::vector<std::vector<uint8_t>> addresses{p.ranks[0]->localAddress(), p.ranks[1]->localAddress()};
  for (int r = 0; r < 2; ++r) {
    std::vector<bool> sameNode{r == 0 || !nodesUnshared, r == 1 || !nodesUnshared};
    p.ranks[r]->connect(addresses, sameNode, 2, nodesUnshared);
  }
  return p;
}

// Each rank sends `bytes` to the other; both check every byte received.
void exchange(Pair& p, size_t bytes) {
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      UcxTransport& t = *p.ranks[r];
      std::vector<uint8_t> out(bytes), in(bytes, 0);
      for (size_t i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(i * 7 + r);
      const sqz::Deadline deadline(30.0);
      const sqz::RequestId recv = t.postRecv(1 - r, sqz::Tag{1, 2}, in.data(), bytes);
      const sqz::RequestId send = t.postSend(1 - r, sqz::Tag{1, 2}, out.data(), bytes);
      try {
        t.wait(recv, deadline);
        t.wait(send, deadline);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "rank " << r << ": " << e.what();
        return;
      }
      size_t wrong = 0;
      for (size_t i = 0; i < bytes; ++i) wrong += in[i] != static_cast<uint8_t>(i * 7 + (1 - r));
      EXPECT_EQ(wrong, 0u) << "rank " << r << ", " << bytes << " bytes";
    });
  }
  for (auto& th : threads) th.join();
}

TEST(UcxNetworkWorker, CarriesACommunicatorOfOneRankPerNode) {
  Pair p = connectPair(true, true, true);
  EXPECT_TRUE(p.ranks[0]->onNetworkWorker());
  EXPECT_TRUE(p.ranks[1]->onNetworkWorker());
  exchange(p, 600 << 10);  // eager there
  exchange(p, 3 << 20);    // rendezvous
}

TEST(UcxNetworkWorker, NotWhenARankSharesItsNode) {
  Pair p = connectPair(true, true, false);
  EXPECT_FALSE(p.ranks[0]->onNetworkWorker());
  EXPECT_FALSE(p.ranks[1]->onNetworkWorker());
  exchange(p, 600 << 10);
}

TEST(UcxNetworkWorker, NotUnlessEveryRankOffersOne) {
  Pair p = connectPair(true, false, true);
  EXPECT_FALSE(p.ranks[0]->onNetworkWorker());
  EXPECT_FALSE(p.ranks[1]->onNetworkWorker());
  exchange(p, 600 << 10);
}

TEST(UcxNetworkWorker, NotOfferedWhenTheUserSetsUcxThreshold) {
  ::setenv("UCX_RNDV_THRESH", "65536", 1);
  Pair p = connectPair(true, true, true);
  ::unsetenv("UCX_RNDV_THRESH");
  EXPECT_FALSE(p.ranks[0]->onNetworkWorker());
  EXPECT_FALSE(p.ranks[1]->onNetworkWorker());
  exchange(p, 600 << 10);
}

TEST(UcxNetworkWorker, MalformedAddressIsARemoteError) {
  UcxTransport t(0, 2, true);
  std::vector<uint8_t> truncated = t.localAddress();
  truncated.resize(truncated.size() - 1);
  const std::vector<std::vector<uint8_t>> addresses{t.localAddress(), truncated};
  try {
    t.connect(addresses, {true, false}, 2, true);
    ADD_FAILURE() << "connect() accepted a truncated address";
  } catch (const sqz::Error& e) {
    EXPECT_EQ(e.code(), sqzRemoteError);
  }
}

}  // namespace
