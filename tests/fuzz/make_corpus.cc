// Writes the fuzzers' seed corpora, one folder per target under DIR:
//   decode/     one valid payload per codec and size (with and without a
//               statistics block), each prefixed by its codec's selector byte
//   bootstrap/  each rendezvous message as it travels, a blob table and a
//               peer-info record, prefixed by bootstrap_fuzz's selector
//   spec/       codec specs, plan names and SQZ_TUNE tables
//   profile/    the default profile as JSON
// Usage: make_corpus DIR (its subfolders must exist)
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_codec.h"
#include "src/bootstrap/handshake.h"
#include "src/bootstrap/peer_info.h"
#include "src/tuner/profile.h"
#include "src/tuner/tune_table.h"
#include "tests/fuzz/fuzz_codecs.h"

namespace {

int g_files = 0;

bool writeSeed(const std::string& dir, unsigned char selector, bool withSelector, const void* bytes, size_t n) {
  const std::string path = dir + "/seed_" + std::to_string(g_files++);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  if (withSelector) std::fwrite(&selector, 1, 1, f);
  std::fwrite(bytes, 1, n, f);
  std::fclose(f);
  return true;
}

template <class T>
bool writeMessage(const std::string& dir, unsigned char selector, const T& msg, const std::vector<uint8_t>& tail = {}) {
  std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(&msg), reinterpret_cast<const uint8_t*>(&msg) + sizeof msg);
  bytes.insert(bytes.end(), tail.begin(), tail.end());
  return writeSeed(dir, selector, true, bytes.data(), bytes.size());
}

// bootstrap_fuzz's selectors: 0 client hello, 1 root proof, 2 rank hello +
// blob, 3 reply (+7*nranks), 4 blob table (+7*nranks), 5 peer info.
bool bootstrapSeeds(const std::string& dir) {
  sqz::HandshakeKeys k;
  for (size_t i = 0; i < k.secret.size(); ++i) k.secret[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < 16; ++i) k.rankNonce[i] = static_cast<uint8_t>(i + 100), k.rootNonce[i] = static_cast<uint8_t>(i * 3);
  const sqz::Blob a = sqz::packPeerInfo({{1, 2, 3, 4}, "node-a", true, "boot-a"}),
                  b = sqz::packPeerInfo({{9, 8}, "node-b", false, "boot-a"});
  const std::vector<uint8_t> table = sqz::packBlobTable({&a, &b});
  const std::string error = "rank 1 was started with nranks=3 but rank 0 with nranks=2";
  return writeMessage(dir, 0, sqz::makeClientHello(k.rankNonce)) && writeMessage(dir, 1, sqz::makeRootProof(k)) &&
         writeMessage(dir, 2, sqz::makeRankHello(k, 1, 2, a), a) &&
         writeMessage(dir, 3 + 7 * 2, sqz::makeRootReply(k, sqz::kReplyOk, table), table) &&
         writeMessage(dir, 3 + 7 * 2, sqz::makeRootReply(k, sqz::kReplyError, {error.begin(), error.end()}),
                      {error.begin(), error.end()}) &&
         writeSeed(dir, 4 + 7 * 2, true, table.data(), table.size()) && writeSeed(dir, 5, true, a.data(), a.size());
}

bool specSeeds(const std::string& dir) {
  for (const char* codec : {"none", "bf16", "q4", "q8:block=64:rn", "topk:0.01:int8", "randk:0.05:bf16:rescale"})
    if (!writeSeed(dir, 0, true, codec, std::string(codec).size())) return false;
  for (const char* plan : {"ring", "qring:q4", "sparse_split:topk:0.01", "hier/none/qa2a:q8", "randk:randk:0.1"})
    if (!writeSeed(dir, 1, true, plan, std::string(plan).size())) return false;
  const std::string tables[] = {sqz::TuneTable::defaultText(), "allreduce:0-64k:host:@ring#allreduce:64k-inf:@auto"};
  for (const std::string& t : tables)
    if (!writeSeed(dir, 2, true, t.data(), t.size())) return false;
  return true;
}

bool profileSeeds(const std::string& dir) {
  const std::string json = sqz::defaultProfile().toJson();
  return writeSeed(dir, 0, false, json.data(), json.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  if (!bootstrapSeeds(root + "/bootstrap") || !specSeeds(root + "/spec") || !profileSeeds(root + "/profile")) return 1;
  const std::string decodeDir = root + "/decode";
  const auto& codecs = sqz::fuzz::codecs();
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
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
        if (!writeSeed(decodeDir, static_cast<unsigned char>(c), true, payload.data(), payload.size())) return 1;
      }
    }
  }
  std::printf("%d seeds in %s\n", g_files, argv[1]);
  return 0;
}
