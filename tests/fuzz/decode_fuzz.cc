// libFuzzer target for the payload decoder: whatever the bytes, decodeCpu
// either decodes within the receiver's buffer or throws sqz::Error; the
// sanitizers catch anything else. Input: one selector byte (which codec the
// receiver expects), then the payload. The count, offset and stats flag the
// receiver expects are taken from the payload's own header (when small), so
// that mutations get past the header checks and exercise the body checks.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "kernels/cpu_codec.h"
#include "tests/fuzz/fuzz_codecs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& codecs = sqz::fuzz::codecs();
  sqz::DecodeExpect x;
  x.params = codecs[data[0] % codecs.size()];
  const uint8_t* payload = data + 1;
  const size_t bytes = size - 1;
  x.count = 100;
  if (bytes >= sizeof(sqz::WireHeader)) {
    sqz::WireHeader h;
    std::memcpy(&h, payload, sizeof h);
    if (h.count <= (1u << 16)) x.count = h.count;
    x.chunkOffset = h.chunkOffset;
    x.withStats = h.statsBytes != 0;
    x.seed = h.selected;  // any value: random-K indices must stay in range for every key
  }
  // The copy makes the payload exactly `bytes` long for AddressSanitizer.
  std::vector<uint8_t> copy(payload, payload + bytes);
  std::vector<float> out(x.count, 0.0f);
  sqz::GradStats stats;
  for (sqz::DecodeMode mode : {sqz::DecodeMode::Overwrite, sqz::DecodeMode::Accumulate}) {
    try {
      sqz::decodeCpu(x, copy.data(), copy.size(), out.data(), mode, x.withStats ? &stats : nullptr);
    } catch (const sqz::Error&) {
      return 0;
    }
  }
  return 0;
}
