#include "src/tuner/link_class.h"

namespace sqz {

const char* linkClassName(LinkClass c) {
  switch (c) {
    case LinkClass::Self: return "self";
    case LinkClass::Shm: return "shm";
    case LinkClass::Pcie: return "pcie";
    case LinkClass::NvLink: return "nvlink";
    case LinkClass::Ib: return "ib";
    case LinkClass::Tcp: return "tcp";
  }
  return "invalid";
}

bool parseLinkClass(const std::string& name, LinkClass* out) {
  for (int i = 0; i < kLinkClasses; ++i) {
    LinkClass c = static_cast<LinkClass>(i);
    if (name == linkClassName(c)) {
      *out = c;
      return true;
    }
  }
  return false;
}

}  // namespace sqz
