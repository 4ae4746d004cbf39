// SQZ_SOCKET_IFNAME (README, sqz.h): which interface the rendezvous of
// sqzGetUniqueId listens on. Comma-separated name prefixes, `=name` for an
// exact name (NCCL_SOCKET_IFNAME's syntax); unset, the first up
// non-loopback interface, else loopback; matching nothing is an error.
// Each case reads the address the unique id carries, and forms a
// communicator over it where it names an interface.
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <vector>

#include "harness/rank_threads.h"
#include "src/bootstrap/unique_id.h"

namespace sqz::test {
namespace {

struct Interface {
  std::string name;
  std::string address;  // IPv4, as SocketAddress::toString prints it without the port
  bool loopback = false;
};

// The up interfaces with an IPv4 address, in getifaddrs order (the order
// the library walks).
std::vector<Interface> upIpv4Interfaces() {
  std::vector<Interface> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* it = list; it; it = it->ifa_next) {
    if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET || !(it->ifa_flags & IFF_UP)) continue;
    bool seen = false;  // an interface with several addresses: the library takes the first
    for (const Interface& i : out) seen |= i.name == it->ifa_name;
    if (seen) continue;
    SocketAddress a;
    std::memcpy(&a.storage, it->ifa_addr, sizeof(sockaddr_in));
    a.length = sizeof(sockaddr_in);
    a.setPort(0);
    std::string text = a.toString();
    out.push_back({it->ifa_name, text.substr(0, text.rfind(':')), (it->ifa_flags & IFF_LOOPBACK) != 0});
  }
  freeifaddrs(list);
  return out;
}

std::string hostOf(const sqzUniqueId& id) {
  const std::string text = BootstrapId::unpack(id).root.toString();
  return text.substr(0, text.rfind(':'));
}

// The address the unique id made under SQZ_SOCKET_IFNAME=spec listens on,
// after a communicator of two ranks formed over it and reduced once.
std::string listenAddressUnder(const char* spec) {
  ScopedEnv ifname("SQZ_SOCKET_IFNAME", spec);
  sqzUniqueId id;
  EXPECT_EQ(sqzGetUniqueId(&id), sqzSuccess) << spec << ": " << sqzGetLastError(nullptr);
  runRanksWithId(2, id, [&](int rank, sqzComm_t& comm) {
    int32_t v = rank + 1;
    ASSERT_EQ(sqzAllReduce(&v, &v, 1, sqzInt32, sqzSum, comm, nullptr), sqzSuccess) << sqzGetLastError(comm);
    EXPECT_EQ(v, 3);
  });
  return hostOf(id);
}

TEST(SocketIfname, ExactNamePicksThatInterface) {
  const std::vector<Interface> all = upIpv4Interfaces();
  ASSERT_FALSE(all.empty());
  for (const Interface& i : all) {
    const std::string spec = "=" + i.name;
    EXPECT_EQ(listenAddressUnder(spec.c_str()), i.address) << "SQZ_SOCKET_IFNAME=" << spec;
  }
}

TEST(SocketIfname, PrefixesAndListsPickTheFirstMatchingInterface) {
  const std::vector<Interface> all = upIpv4Interfaces();
  for (const Interface& i : all) {
    // The name's first letter: the first interface (in order) it prefixes.
    const std::string prefix = i.name.substr(0, 1);
    std::string first;
    for (const Interface& j : all)
      if (j.name.rfind(prefix, 0) == 0) {
        first = j.address;
        break;
      }
    EXPECT_EQ(listenAddressUnder(prefix.c_str()), first) << "SQZ_SOCKET_IFNAME=" << prefix;
    // A list: items that match nothing are skipped.
    const std::string list = "sqz-no-such-if0,=" + i.name;
    EXPECT_EQ(listenAddressUnder(list.c_str()), i.address) << "SQZ_SOCKET_IFNAME=" << list;
  }
}

TEST(SocketIfname, UnsetPrefersANonLoopbackInterface) {
  const std::vector<Interface> all = upIpv4Interfaces();
  std::string want;
  for (const Interface& i : all)
    if (!i.loopback) {
      want = i.address;
      break;
    }
  if (want.empty()) want = "127.0.0.1";
  EXPECT_EQ(listenAddressUnder(nullptr), want);
}

// Matching nothing is an error naming the variable, not a silent fallback;
// `=name` is exact, so a name's prefix after `=` matches nothing.
TEST(SocketIfname, MatchingNothingIsAnError) {
  const std::vector<Interface> all = upIpv4Interfaces();
  ASSERT_FALSE(all.empty());
  std::vector<std::string> specs{"sqz-no-such-if0", "=sqz-no-such-if0,sqz-no-such-if1"};
  for (const Interface& i : all)
    if (i.name.size() > 1) {
      bool prefixIsAName = false;
      for (const Interface& j : all) prefixIsAName |= j.name == i.name.substr(0, i.name.size() - 1);
      if (!prefixIsAName) specs.push_back("=" + i.name.substr(0, i.name.size() - 1));
    }
  for (const std::string& spec : specs) {
    ScopedEnv ifname("SQZ_SOCKET_IFNAME", spec.c_str());
    sqzUniqueId id;
    EXPECT_EQ(sqzGetUniqueId(&id), sqzInvalidArgument) << spec;
    EXPECT_NE(std::string(sqzGetLastError(nullptr)).find("SQZ_SOCKET_IFNAME"), std::string::npos)
        << spec << ": " << sqzGetLastError(nullptr);
  }
}

}  // namespace
}  // namespace sqz::test
