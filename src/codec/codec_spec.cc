#include "src/codec/codec_spec.h"

#include <cstdlib>
#include <sstream>

#include "common/error.h"
#include "common/strict_number.h"
#include "kernels/wire_format.h"

namespace sqz {
namespace {

std::vector<std::string> splitColons(const std::string& s) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, ':')) parts.push_back(part);
  if (!s.empty() && s.back() == ':') parts.push_back("");
  return parts;
}

double parseRatio(const std::string& spec, const std::string& text) {
  double r = 0;
  SQZ_REQUIRE(parseDecimal(text.c_str(), 1.0, &r) && r > 0.0, sqzInvalidUsage,
              "codec '%s': ratio '%s' must be a number in (0, 1]", spec.c_str(), text.c_str());
  return r;
}

bool parseValueFormat(const std::string& opt, ValueFormat* f) {
  if (opt == "fp32") *f = ValueFormat::Fp32;
  else if (opt == "bf16") *f = ValueFormat::Bf16;
  else if (opt == "int8") *f = ValueFormat::Int8;
  else return false;
  return true;
}

std::string formatRatio(double r) {
  std::ostringstream o;
  o.precision(17);
  o << r;
  // Shortest text that reads back to the same double.
  for (int prec = 1; prec <= 17; ++prec) {
    std::ostringstream s;
    s.precision(prec);
    s << r;
    if (std::strtod(s.str().c_str(), nullptr) == r) return s.str();
  }
  return o.str();
}

}  // namespace

CodecParams parseCodecSpec(const std::string& spec) {
  std::vector<std::string> parts = splitColons(spec);
  SQZ_REQUIRE(!parts.empty(), sqzInvalidUsage, "empty codec name");
  const std::string& head = parts[0];
  CodecParams p;
  size_t next = 1;
  if (head == "none") {
    p.kind = CodecKind::None;
  } else if (head == "bf16") {
    p.kind = CodecKind::Bf16;
  } else if (head == "fp16") {
    p.kind = CodecKind::Fp16;
  } else if (head == "q1" || head == "q2" || head == "q4" || head == "q8") {
    p.kind = CodecKind::Quant;
    p.bits = static_cast<uint8_t>(head[1] - '0');
    p.blockSize = defaultBlockSize(p.bits);
    p.stochastic = true;
  } else if (head == "sign") {
    p.kind = CodecKind::Sign;
    p.blockSize = kDefaultSignBlockSize;
  } else if (head == "topk" || head == "randk") {
    p.kind = head == "topk" ? CodecKind::TopK : CodecKind::RandK;
    SQZ_REQUIRE(parts.size() >= 2, sqzInvalidUsage, "codec '%s' needs a ratio, e.g. %s:0.01", spec.c_str(),
                head.c_str());
    p.ratio = parseRatio(spec, parts[1]);
    next = 2;
  } else {
    fail(sqzInvalidUsage, "unknown codec '%s' (none, bf16, fp16, q1, q2, q4, q8, sign, topk:R, randk:R)", spec.c_str());
  }
  for (size_t i = next; i < parts.size(); ++i) {
    const std::string& opt = parts[i];
    if (p.kind == CodecKind::Quant && opt.rfind("block=", 0) == 0) {
      uint64_t b = 0;
      SQZ_REQUIRE(parseUnsigned(opt.c_str() + 6, kMaxBlockSize, &b) && b > 0 && b % 8 == 0, sqzInvalidUsage,
                  "codec '%s': block size must be a multiple of 8 in [8, 65536]", spec.c_str());
      p.blockSize = static_cast<uint32_t>(b);
    } else if (p.kind == CodecKind::Sign && opt.rfind("block=", 0) == 0) {
      char* end = nullptr;
      unsigned long b = std::strtoul(opt.c_str() + 6, &end, 10);
      SQZ_REQUIRE(opt.size() > 6 && *end == '\0' && b > 0 && b % kSignBlockMultiple == 0 && b <= kMaxBlockSize,
                  sqzInvalidUsage, "codec '%s': sign block size must be a multiple of 32 in [32, 65536]", spec.c_str());
      p.blockSize = static_cast<uint32_t>(b);
    } else if (p.kind == CodecKind::Sign && opt == "rot") {
      p.rotate = true;
    } else if (p.kind == CodecKind::Quant && (opt == "sr" || opt == "rn")) {
      p.stochastic = opt == "sr";
    } else if ((p.kind == CodecKind::TopK || p.kind == CodecKind::RandK) && parseValueFormat(opt, &p.values)) {
    } else if (p.kind == CodecKind::RandK && opt == "rescale") {
      p.rescale = true;
    } else {
      fail(sqzInvalidUsage, "codec '%s': unknown option '%s'", spec.c_str(), opt.c_str());
    }
  }
  if (const char* why = checkCodecParams(p)) fail(sqzInvalidUsage, "codec '%s': %s", spec.c_str(), why);
  return p;
}

std::string codecName(const CodecParams& p) {
  switch (p.kind) {
    case CodecKind::None: return "none";
    case CodecKind::Bf16: return "bf16";
    case CodecKind::Fp16: return "fp16";
    case CodecKind::Quant: {
      std::string s = "q" + std::to_string(p.bits);
      if (p.blockSize != defaultBlockSize(p.bits)) s += ":block=" + std::to_string(p.blockSize);
      if (!p.stochastic) s += ":rn";
      return s;
    }
    case CodecKind::Sign: {
      std::string s = p.blockSize == kDefaultSignBlockSize ? "sign" : "sign:block=" + std::to_string(p.blockSize);
      if (p.rotate) s += ":rot";
      return s;
    }
    case CodecKind::TopK:
    case CodecKind::RandK: {
      std::string s = (p.kind == CodecKind::TopK ? "topk:" : "randk:") + formatRatio(p.ratio);
      if (p.values == ValueFormat::Bf16) s += ":bf16";
      if (p.values == ValueFormat::Int8) s += ":int8";
      if (p.rescale) s += ":rescale";
      return s;
    }
  }
  return "invalid";
}

bool sameCodec(const CodecParams& a, const CodecParams& b) { return codecName(a) == codecName(b); }

std::vector<CodecParams> standardCodecLevels() {
  std::vector<CodecParams> out;
  for (const char* name : {"none", "bf16", "q8", "q4", "q2", "sign", "sign:rot", "topk:0.1", "topk:0.01", "topk:0.001"})
    out.push_back(parseCodecSpec(name));
  return out;
}

}  // namespace sqz
