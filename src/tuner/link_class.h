// The kinds of link a message between two ranks can cross (DESIGN.md
// section 3). A profile holds one cost curve per class; a plan's stage names
// the class it runs on.
#pragma once

#include <string>

namespace sqz {

enum class LinkClass { Self = 0, Shm = 1, Pcie = 2, NvLink = 3, Ib = 4, Tcp = 5 };
inline constexpr int kLinkClasses = 6;

// "self", "shm", "pcie", "nvlink", "ib", "tcp".
const char* linkClassName(LinkClass c);
// False when `name` is none of the above.
bool parseLinkClass(const std::string& name, LinkClass* out);

}  // namespace sqz
