#include "src/tuner/plan_name.h"

#include <cstring>

#include "common/error.h"
#include "src/codec/codec_spec.h"

namespace sqz {
namespace {

const AlgorithmInfo kRegistry[] = {
    {"ring", "exact ring reduce-scatter + allgather"},
    {"direct", "exact all-to-all: every rank sends its whole buffer to every other rank (small buffers)"},
    {"qa2a", "all-to-all reduce-scatter of encoded chunks, owner re-encodes its sum, all-to-all allgather"},
    {"qring", "ring of encoded chunks (re-encoded at each hop): casts and quantizers at large rank counts"},
    {"sparse_ag", "top-K (index, value) pairs allgathered and scatter-added"},
    {"sparse_split", "top-K pairs of index range j sent to rank j, which sums and allgathers its range"},
    {"randk", "random-K with a shared seed: the K values go through the exact ring"},
    {"gather", "device buffers: each rank encodes its whole buffer once, the payloads are allgathered, every rank decodes all of them in rank order"},
    {"hier", "intra-node reduce-scatter, inter-node allreduce per shard, intra-node allgather"},
    {nullptr, nullptr}};

const char* codecCheck(const std::string& algorithm, const CodecParams& c) {
  const bool lossyDense = c.kind == CodecKind::Bf16 || c.kind == CodecKind::Fp16 || c.kind == CodecKind::Quant;
  if (algorithm == "ring" || algorithm == "direct")
    return c.kind == CodecKind::None ? nullptr : "ring and direct are exact (no codec)";
  if (algorithm == "qa2a" || algorithm == "qring")
    return lossyDense ? nullptr : "qa2a and qring carry bf16, fp16 or a quantizer (q1, q2, q4, q8)";
  if (algorithm == "sparse_ag" || algorithm == "sparse_split")
    return c.kind == CodecKind::TopK ? nullptr : "sparse_ag and sparse_split need topk:R";
  if (algorithm == "gather")
    return lossyDense || c.kind == CodecKind::TopK ? nullptr : "gather carries bf16, fp16, a quantizer or topk:R";
  if (algorithm == "randk") return c.kind == CodecKind::RandK ? nullptr : "randk needs randk:R";
  return "unknown algorithm";
}

void parseFlat(const std::string& whole, const std::string& text, std::string* algorithm, CodecParams* codec) {
  const size_t colon = text.find(':');
  *algorithm = text.substr(0, colon);
  SQZ_REQUIRE(!algorithm->empty(), sqzInvalidUsage, "plan '%s': missing algorithm name", whole.c_str());
  SQZ_REQUIRE(isKnownAlgorithm(*algorithm) && *algorithm != "hier", sqzInvalidUsage,
              "plan '%s': unknown algorithm '%s' (ring, direct, qa2a, qring, sparse_ag, sparse_split, randk, gather, hier/CODEC/...)", whole.c_str(),
              algorithm->c_str());
  *codec = colon == std::string::npos ? CodecParams{} : parseCodecSpec(text.substr(colon + 1));
  if (const char* why = codecCheck(*algorithm, *codec))
    fail(sqzInvalidUsage, "plan '%s': %s", whole.c_str(), why);
}

}  // namespace

const AlgorithmInfo* algorithmRegistry() { return kRegistry; }

bool isKnownAlgorithm(const std::string& name) {
  for (const AlgorithmInfo* a = kRegistry; a->name; ++a)
    if (name == a->name) return true;
  return false;
}

PlanSpec parsePlanName(const std::string& text) {
  PlanSpec s;
  if (text.rfind("hier/", 0) == 0) {
    const size_t slash = text.find('/', 5);
    SQZ_REQUIRE(slash != std::string::npos, sqzInvalidUsage,
                "plan '%s': hierarchical plans are hier/INTRA_CODEC/ALGORITHM[:CODEC]", text.c_str());
    s.hierarchical = true;
    s.intraCodec = parseCodecSpec(text.substr(5, slash - 5));
    SQZ_REQUIRE(s.intraCodec.kind == CodecKind::None || s.intraCodec.kind == CodecKind::Bf16 ||
                    s.intraCodec.kind == CodecKind::Fp16,
                sqzInvalidUsage, "plan '%s': the intra-node codec must be none, bf16 or fp16", text.c_str());
    parseFlat(text, text.substr(slash + 1), &s.algorithm, &s.codec);
    return s;
  }
  parseFlat(text, text, &s.algorithm, &s.codec);
  return s;
}

std::string planName(const PlanSpec& s) {
  std::string flat = s.algorithm;
  if (s.codec.kind != CodecKind::None) flat += ":" + codecName(s.codec);
  return s.hierarchical ? "hier/" + codecName(s.intraCodec) + "/" + flat : flat;
}

}  // namespace sqz
