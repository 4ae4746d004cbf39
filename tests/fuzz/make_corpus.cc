// Writes the decoder fuzzer's seed corpus: one valid payload per codec and
// size (with and without a statistics block), each prefixed by the selector
// byte of its codec. Usage: make_corpus DIR
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_codec.h"
#include "tests/fuzz/fuzz_codecs.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const auto& codecs = sqz::fuzz::codecs();
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  int files = 0;
  for (size_t c = 0; c < codecs.size(); ++c) {
    for (size_t n : {1u, 7u, 64u, 300u}) {
      for (bool withStats : {false, true}) {
        std::vector<float> x(n);
        for (auto& v : x) v = d(rng);
        sqz::GradStats st;
        sqz::clearStats(&st);
        sqz::gradStatsCpu(x.data(), sqzFloat32, nullptr, n, &st);
        sqz::EncodeArgs a;
        a.input = x.data();
        a.count = n;
        a.chunkOffset = 16 * c;
        a.stats = withStats ? &st : nullptr;
        std::vector<uint8_t> payload(sqz::encodedBytes(codecs[c], n, withStats));
        sqz::encodeCpu(codecs[c], a, payload.data(), payload.size());
        std::string path = std::string(argv[1]) + "/seed_" + std::to_string(files++);
        FILE* f = std::fopen(path.c_str(), "wb");
        if (!f) return 1;
        const unsigned char sel = static_cast<unsigned char>(c);
        std::fwrite(&sel, 1, 1, f);
        std::fwrite(payload.data(), 1, payload.size(), f);
        std::fclose(f);
      }
    }
  }
  std::printf("%d seeds in %s\n", files, argv[1]);
  return 0;
}
