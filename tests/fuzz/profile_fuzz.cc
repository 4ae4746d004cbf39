// libFuzzer target for Profile::fromJson (a profile file from the cache
// directory or SQZ_PROFILE, which anyone with write access there controls):
// whatever the text, it returns a profile or throws sqz::Error, and a
// profile it returns writes itself back as JSON it reads again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "src/tuner/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sqz::Profile p;
  try {
    p = sqz::Profile::fromJson(text);
  } catch (const sqz::Error&) {
    return 0;
  }
  sqz::Profile::fromJson(p.toJson());  // its own output must load (throws: a crash)
  return 0;
}
