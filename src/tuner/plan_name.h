// Printable plan names, made of registry names (DESIGN.md section 3): the
// same text is the tuner's output, SQZ_DEBUG=INFO's log, sqzCallInfo.plan
// and an SQZ_TUNE target, so forcing a logged name reproduces the call.
//   plan  := flat | 'hier/' codec '/' flat
//   flat  := algorithm [':' codec]       (no codec: "none")
//   algorithm := ring | direct | qa2a | qring | sparse_ag | sparse_split | randk | gather
//   (gather: device buffers only, src/device/device_path.h)
// (the names of src/comm.cc's registry and of SQZ_COMPRESSION's "@algo:"),
// e.g. "ring", "qring:bf16", "randk:randk:0.01", "qa2a:q4", "sparse_ag:topk:0.001",
// "hier/none/qa2a:q2" (exact reduce-scatter and allgather inside each node,
// qa2a:q2 between nodes).
#pragma once

#include <string>

#include "kernels/codec_params.h"

namespace sqz {

// The algorithm registry (as UCC's {id, name, desc} tables).
struct AlgorithmInfo {
  const char* name;
  const char* description;
};
// ring, direct, qa2a, qring, sparse_ag, sparse_split, randk, gather, hier; ends with name == nullptr.
const AlgorithmInfo* algorithmRegistry();
bool isKnownAlgorithm(const std::string& name);

struct PlanSpec {
  std::string algorithm;      // flat algorithm (the inter-node one for hier)
  CodecParams codec;          // its codec
  bool hierarchical = false;
  CodecParams intraCodec;     // hier: codec of the intra-node stages
};

// Throws sqz::Error(sqzInvalidUsage) naming the bad part; also rejects
// codecs an algorithm cannot run (ring and direct: none; qa2a and qring:
// bf16, fp16, qB; sparse_ag: topk; randk: randk; hier's intra codec: none,
// bf16 or fp16).
PlanSpec parsePlanName(const std::string& text);
// Canonical: parsePlanName(planName(s)) == s.
std::string planName(const PlanSpec& s);

}  // namespace sqz
