#include "src/tuner/plan_name.h"

#include <cstring>

#include "common/error.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/algorithm_table.h"

namespace sqz {
namespace {

void parseFlat(const std::string& whole, const std::string& text, std::string* algorithm, CodecParams* codec) {
  const size_t colon = text.find(':');
  *algorithm = text.substr(0, colon);
  SQZ_REQUIRE(!algorithm->empty(), sqzInvalidUsage, "plan '%s': missing algorithm name", whole.c_str());
  const AlgorithmEntry* entry = findAlgorithm(*algorithm);
  SQZ_REQUIRE(entry && entry->id != AlgorithmId::kHier, sqzInvalidUsage,
              "plan '%s': unknown algorithm '%s' (%s; hier as hier/CODEC/...)", whole.c_str(), algorithm->c_str(),
              algorithmNames().c_str());
  *codec = colon == std::string::npos ? CodecParams{} : parseCodecSpec(text.substr(colon + 1));
  if (const char* carried = cannotCarry(*entry, *codec))
    fail(sqzInvalidUsage, "plan '%s': %s carries %s", whole.c_str(), algorithm->c_str(), carried);
}

}  // namespace

bool isKnownAlgorithm(const std::string& name) { return findAlgorithm(name) != nullptr; }

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
