// One way to run one allreduce call, as the cost model sees it: an
// algorithm and codec (a PlanSpec) and the stages it runs, each described
// by the messages one rank sends and the values it encodes and decodes.
// Built by the functions of allreduce_shapes.h, which mirror the schedules
// in collectives/.
#pragma once

#include <string>
#include <vector>

#include "kernels/codec_params.h"
#include "src/tuner/link_class.h"
#include "src/tuner/plan_name.h"

namespace sqz {

struct Stage {
  std::string role;          // "allreduce", "intra_reduce_scatter", "inter_allreduce", "intra_allgather"
  LinkClass link = LinkClass::Self;
  CodecParams codec;         // what travels on this stage's messages
  int steps = 0;             // sequential steps (a step waits for the previous)
  int messagesPerStep = 0;   // messages one rank sends concurrently in a step
  double messageBytes = 0;   // bytes of each message
  // Ranks that push their messages through the same physical link at once
  // (e.g. 8 GPUs behind one NIC): a step moves messagesPerStep *
  // messageBytes * linkSharers bytes through the link.
  int linkSharers = 1;
  double encodeElements = 0;  // fp32 values this rank encodes (+EF)
  double decodeElements = 0;  // fp32-equivalent values this rank decodes + accumulates

  double bytesSentPerRank() const { return static_cast<double>(steps) * messagesPerStep * messageBytes; }
};

struct Candidate {
  PlanSpec spec;
  std::vector<Stage> stages;
  double overheadSeconds = 0;  // per-call work outside the stages (e.g. the statistics pass)

  std::string name() const { return planName(spec); }
  double bytesSentPerRank() const {
    double b = 0;
    for (const Stage& s : stages) b += s.bytesSentPerRank();
    return b;
  }
};

}  // namespace sqz
