// Printable plan names, made of registry names (DESIGN.md section 3): the
// same text is the tuner's output, SQZ_DEBUG=INFO's log, sqzCallInfo.plan
// and an SQZ_TUNE target, so forcing a logged name reproduces the call.
//   plan  := flat | 'hier/' codec '/' flat
//   flat  := algorithm [':' codec]       (no codec: "none")
//   algorithm := a name in the algorithm table (src/tuner/algorithm_table.h):
//                ring | direct | qa2a | qring | sparse_ag | sparse_split | randk | gather
//   (gather: device buffers only, src/device/device_path.h)
// (the names SQZ_COMPRESSION's "@algo:" takes),
// e.g. "ring", "qring:bf16", "randk:randk:0.01", "qa2a:q4", "sparse_ag:topk:0.001",
// "hier/none/qa2a:q2" (exact reduce-scatter and allgather inside each node,
// qa2a:q2 between nodes).
#pragma once

#include <string>

#include "kernels/codec_params.h"

namespace sqz {

// A name in the algorithm table (hier included).
bool isKnownAlgorithm(const std::string& name);

struct PlanSpec {
  std::string algorithm;      // flat algorithm (the inter-node one for hier)
  CodecParams codec;          // its codec
  bool hierarchical = false;
  CodecParams intraCodec;     // hier: codec of the intra-node stages
};

// Throws sqz::Error(sqzInvalidUsage) naming the bad part; also rejects
// codecs an algorithm cannot carry (the table's `carries`; hier's intra
// codec: none, bf16 or fp16).
PlanSpec parsePlanName(const std::string& text);
// Canonical: parsePlanName(planName(s)) == s.
std::string planName(const PlanSpec& s);

}  // namespace sqz
