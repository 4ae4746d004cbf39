// The codecs the decoder fuzz target and its corpus generator agree on.
#pragma once

#include <vector>

#include "src/codec/codec_spec.h"

namespace sqz::fuzz {

inline const std::vector<CodecParams>& codecs() {
  static const std::vector<CodecParams> list = [] {
    std::vector<CodecParams> v;
    for (const char* s : {"none", "bf16", "fp16", "q8", "q4", "q2", "q1:rn", "q4:block=64", "sign", "sign:block=64", "sign:rot", "topk:0.05",
                          "topk:0.1:bf16", "topk:0.2:int8", "randk:0.1", "randk:0.3:int8:rescale"})
      v.push_back(parseCodecSpec(s));
    return v;
  }();
  return list;
}

}  // namespace sqz::fuzz
