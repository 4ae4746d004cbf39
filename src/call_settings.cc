#include "src/call_settings.h"

#include "src/comm.h"

namespace sqz {

uint32_t textHash(const std::string& text) {
  uint32_t h = 2166136261u;
  for (unsigned char c : text) h = (h ^ c) * 16777619u;
  return h;
}

uint32_t settingsHash(const CommConfig& c, const std::string& tuneTable) {
  return textHash("chunk=" + std::to_string(c.chunkBytes) + ";direct=" + std::to_string(c.directMaxBytes) +
                  ";min=" + std::to_string(c.minBytes) + ";stats_every_max=" + std::to_string(c.statsEveryMax) +
                  ";mode=" + (c.tuneSync ? "sync" : "lagged") + ";tune=" + tuneTable);
}

uint64_t rngKey(uint64_t seed, uint64_t step) {
  // splitmix64 of each, combined: any difference in either changes the key.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return mix(seed ^ mix(step)) | 1;
}

}  // namespace sqz
