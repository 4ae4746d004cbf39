#include "soak/soak_load.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "common/dtype.h"
#include "common/splitmix.h"
#include "kernels/half.h"

namespace sqz::soak {
namespace {

const char* const kSpecs[] = {"none",        "bf16",           "fp16",           "q8",
                              "q4",          "q2",             "q1",             "q4:rn",
                              "q8:block=64", "topk:0.01",      "topk:0.1",       "topk:0.05:int8",
                              "topk:0.02:bf16", "randk:0.05",  "randk:0.1:rescale", "auto",
                              "auto",        "@qring:q4",      "@qa2a:q2",       "@sparse_split:topk:0.01",
                              "@qring:bf16", "@randk:randk:0.02:bf16"};
constexpr size_t kNumSpecs = sizeof(kSpecs) / sizeof(kSpecs[0]);

}  // namespace

Call drawCall(uint64_t seed, uint64_t index, int nranks, size_t maxCount) {
  std::mt19937_64 rng(splitmix64(seed ^ splitmix64(index)));
  auto uniform = [&](double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); };
  Call c;
  const double u = uniform(0, 1);
  c.count = std::min(static_cast<size_t>(std::exp2(uniform(0, 24))), maxCount);
  c.inPlace = rng() % 2;
  if (u < 0.70) {
    c.kind = Call::kLossy;
    const sqzDataType_t types[] = {sqzFloat32, sqzFloat32, sqzFloat16, sqzBfloat16};
    c.type = types[rng() % 4];
    c.op = rng() % 3 == 0 ? sqzAvg : sqzSum;
    c.spec = rng() % 5 == 0 ? "" : kSpecs[rng() % kNumSpecs];
    c.freshState = rng() % 2;
    c.sparse = rng() % 6 == 0;
  } else if (u < 0.82) {
    c.kind = Call::kExact;
    c.count = std::min<size_t>(c.count, 1 << 20);
    c.type = static_cast<sqzDataType_t>(rng() % sqzNumTypes);
    c.op = static_cast<sqzRedOp_t>(rng() % sqzNumOps);
  } else if (u < 0.87) {
    c.kind = Call::kBroadcast;
    c.count = std::min<size_t>(c.count, 1 << 20);
    c.type = static_cast<sqzDataType_t>(rng() % sqzNumTypes);
    c.root = static_cast<int>(rng() % nranks);
  } else if (u < 0.91) {
    c.kind = Call::kAllGather;
    c.count = std::min<size_t>(c.count, 1 << 18);
    c.type = static_cast<sqzDataType_t>(rng() % sqzNumTypes);
  } else if (u < 0.93) {
    c.kind = Call::kBarrier;
  } else if (u < 0.96) {
    c.kind = Call::kPolicy;
    c.spec = kSpecs[rng() % kNumSpecs];
  } else {
    c.kind = Call::kReform;
  }
  return c;
}

std::vector<float> lossyInput(uint64_t seed, uint64_t index, int rank, const Call& c) {
  std::vector<float> x(c.count);
  const uint64_t key = splitmix64(seed ^ splitmix64(index) ^ (0x1234567ull * (rank + 1)));
  const float scale = 1.0f + rank;
  for (size_t i = 0; i < c.count; ++i) {
    const uint64_t h = splitmix64(key + i);
    float v = (static_cast<float>(h >> 40) * 0x1p-23f - 1.0f) * scale;
    if (c.sparse && (h & 127) != 0) v = 0.0f;
    if (c.type == sqzFloat16) v = fp16ToFloat(floatToFp16(v));
    if (c.type == sqzBfloat16) v = bf16ToFloat(floatToBf16(v));
    x[i] = v;
  }
  return x;
}

std::vector<unsigned char> toType(const std::vector<float>& x, sqzDataType_t type) {
  std::vector<unsigned char> out(x.size() * dataTypeSize(type) + 1);
  for (size_t i = 0; i < x.size(); ++i) {
    if (type == sqzFloat32) {
      std::memcpy(out.data() + 4 * i, &x[i], 4);
    } else {
      const uint16_t h = type == sqzFloat16 ? floatToFp16(x[i]) : floatToBf16(x[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

}  // namespace sqz::soak
