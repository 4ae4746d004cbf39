// Inputs and small helpers shared by the codec tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_codec.h"
#include "kernels/wire_format.h"
#include "src/codec/codec_spec.h"

namespace sqz::test {

struct InputCase {
  std::string name;
  std::vector<float> data;
};

inline std::vector<float> normalInput(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Student-t-like: normal / sqrt(uniform), capped so fp16 stays finite.
inline std::vector<float> heavyTailedInput(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(1e-6f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) {
    float t = d(rng) / (u(rng) * u(rng));
    x = std::fmax(-3.0e4f, std::fmin(3.0e4f, t)) * 1e-3f;
  }
  return v;
}

// The families every round-trip test runs on.
inline std::vector<InputCase> standardInputs() {
  return {
      {"normal4109", normalInput(4109, 1)},
      {"heavy4096", heavyTailedInput(4096, 2)},
      {"constant777", std::vector<float>(777, 3.25f)},
      {"zeros515", std::vector<float>(515, 0.0f)},
      {"one", {-1.5f}},
      {"odd1001", normalInput(1001, 3, 1e-3f)},
      {"tiny7", {1e-30f, -2e-30f, 0.0f, 5.0f, -5.0f, 1e-8f, 3.0f}},
  };
}

inline std::vector<std::string> allCodecSpecs() {
  return {"none", "bf16", "fp16", "q8", "q4", "q2", "q1", "q8:rn", "q4:rn", "q2:rn", "q1:rn", "q4:block=64",
          "q8:block=1024:rn", "sign", "sign:block=32", "sign:block=1024", "sign:rot", "sign:block=96:rot", "topk:0.01", "topk:0.1:bf16", "topk:0.3:int8", "topk:1", "randk:0.1",
          "randk:0.25:bf16", "randk:0.05:int8:rescale", "randk:0.5:rescale"};
}

inline std::vector<uint8_t> encodeToVector(const CodecParams& p, EncodeArgs a) {
  std::vector<uint8_t> payload(encodedBytes(p, a.count, a.stats != nullptr));
  EncodeResult r = encodeCpu(p, a, payload.data(), payload.size());
  payload.resize(r.bytes);
  return payload;
}

inline DecodeExpect expectFor(const CodecParams& p, const EncodeArgs& a) {
  DecodeExpect x;
  x.params = p;
  x.count = a.count;
  x.chunkOffset = a.chunkOffset;
  x.withStats = a.stats != nullptr;
  x.seed = a.seed;
  x.step = a.step;
  return x;
}

inline std::vector<float> decodeToVector(const CodecParams& p, const EncodeArgs& a, const std::vector<uint8_t>& pl) {
  std::vector<float> out(a.count, 12345.0f);
  decodeCpu(expectFor(p, a), pl.data(), pl.size(), out.data(), DecodeMode::Overwrite);
  return out;
}

}  // namespace sqz::test
