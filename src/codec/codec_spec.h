// Codec names: the one string syntax shared by SQZ_COMPRESSION, the tuner's
// plan names, perf flags and logs.
//   none | bf16 | fp16
//   q1 | q2 | q4 | q8   [:block=N] [:sr (stochastic, default) | :rn (nearest)]
//   sign                [:block=N]  (scaled sign, N a multiple of 32, default 256)
//   topk:RATIO          [:fp32 (default) | :bf16 | :int8]
//   randk:RATIO         [:fp32 (default) | :bf16 | :int8] [:rescale]
// e.g. "q4:block=512:rn", "topk:0.01:bf16", "randk:0.05:rescale".
#pragma once

#include <string>
#include <vector>

#include "kernels/codec_params.h"

namespace sqz {

// Throws sqz::Error(sqzInvalidUsage) naming the bad part.
CodecParams parseCodecSpec(const std::string& spec);

// Canonical name (defaults omitted): parseCodecSpec(codecName(p)) == p.
std::string codecName(const CodecParams& p);

bool sameCodec(const CodecParams& a, const CodecParams& b);

// The levels the tuner ranks by default, from exact to most compressed.
std::vector<CodecParams> standardCodecLevels();

}  // namespace sqz
