// libFuzzer target for the text parsers of a user's settings:
// parseCodecSpec (SQZ_COMPRESSION's codecs), parsePlanName ("@qring:q4")
// and the SQZ_TUNE table. Whatever the text, each returns a value or throws
// sqz::Error; a parsed codec, plan or table names itself back exactly.
// Input: one selector byte (which parser), then the text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/plan_name.h"
#include "src/tuner/tune_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 3) {
      case 0: {
        const sqz::CodecParams p = sqz::parseCodecSpec(text);
        if (sqz::codecName(sqz::parseCodecSpec(sqz::codecName(p))) != sqz::codecName(p)) __builtin_trap();
        break;
      }
      case 1: {
        const sqz::PlanSpec s = sqz::parsePlanName(text);
        if (sqz::planName(sqz::parsePlanName(sqz::planName(s))) != sqz::planName(s)) __builtin_trap();
        break;
      }
      default: {
        const std::string canonical = sqz::TuneTable::parse(text).toString();
        if (sqz::TuneTable::parse(canonical).toString() != canonical) __builtin_trap();
        break;
      }
    }
  } catch (const sqz::Error&) {
  }
  return 0;
}
