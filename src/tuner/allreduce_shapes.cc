#include "src/tuner/allreduce_shapes.h"

#include <algorithm>
#include <cmath>

#include "collectives/sparse_allreduce.h"
#include "common/error.h"
#include "kernels/wire_format.h"
#include "src/tuner/algorithm_table.h"

namespace sqz {
namespace {

size_t chunkOf(double n, int N) { return static_cast<size_t>(std::ceil(n / N)); }

// Bytes of n elements on the wire in `codec`: raw fp32 for the exact path
// (no header), else the payload with its header.
double wireBytes(const CodecParams& codec, size_t n, int elementBytes = 4) {
  if (codec.kind == CodecKind::None) return static_cast<double>(elementBytes) * static_cast<double>(n);
  return static_cast<double>(encodedBytes(codec, n));
}

Candidate single(const char* algorithm, const CodecParams& codec, Stage s) {
  Candidate c;
  c.spec.algorithm = algorithm;
  c.spec.codec = codec;
  s.role = "allreduce";
  s.codec = codec;
  c.stages.push_back(s);
  return c;
}

// A ring over N ranks: reduce-scatter and/or allgather phases of N-1 steps,
// one message of `chunkBytes` per step.
Stage ringStage(const char* role, int N, LinkClass link, const CodecParams& codec, double chunkBytes, int phases) {
  Stage s;
  s.role = role;
  s.link = link;
  s.codec = codec;
  s.steps = N > 1 ? phases * (N - 1) : 0;
  s.messagesPerStep = N > 1 ? 1 : 0;
  s.messageBytes = chunkBytes;
  return s;
}

}  // namespace

int Topology::ranksPerNic() const {
  const int nics = nicsPerNode > 0 ? nicsPerNode : 1;
  const int r = (ranksPerNode + nics - 1) / nics;
  return r > 0 ? r : 1;
}

Candidate ringCandidate(double n, int N, LinkClass link, int elementBytes) {
  Stage s = ringStage("allreduce", N, link, CodecParams{}, wireBytes(CodecParams{}, chunkOf(n, N), elementBytes), 2);
  s.decodeElements = static_cast<double>(N - 1) / N * n;  // the reduce-scatter's additions
  return single("ring", CodecParams{}, s);
}

Candidate directCandidate(double n, int N, LinkClass link, int sharers, int elementBytes) {
  Stage s;
  s.link = link;
  s.steps = N > 1 ? 1 : 0;
  s.messagesPerStep = N - 1;
  s.messageBytes = static_cast<double>(elementBytes) * n;
  s.linkSharers = sharers;
  s.decodeElements = static_cast<double>(N - 1) * n;
  return single("direct", CodecParams{}, s);
}

Candidate quantizedA2aCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers) {
  Stage s;
  s.link = link;
  s.steps = N > 1 ? 2 : 0;
  s.messagesPerStep = N - 1;
  s.messageBytes = wireBytes(codec, chunkOf(n, N));
  s.linkSharers = sharers;
  s.encodeElements = n;  // N-1 peer chunks, then the owner's reduced chunk
  s.decodeElements = 2.0 * (N - 1) / N * n;  // owner sums N-1 chunks; all decode N-1 reduced chunks
  return single("qa2a", codec, s);
}

Candidate codecRingCandidate(double n, int N, LinkClass link, const CodecParams& codec) {
  Stage s = ringStage("allreduce", N, link, codec, wireBytes(codec, chunkOf(n, N)), 2);
  // Reduce-scatter: each hop decodes, adds and re-encodes one chunk;
  // allgather: each arriving chunk is decoded once.
  s.encodeElements = n;
  s.decodeElements = 2.0 * (N - 1) / N * n;
  return single("qring", codec, s);
}

Candidate sparseAllgatherCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers) {
  Stage s;
  s.link = link;
  s.steps = N > 1 ? 1 : 0;
  s.messagesPerStep = N - 1;
  s.messageBytes = wireBytes(SparseAllreduce::wireCodec(codec), static_cast<size_t>(std::ceil(n)));
  s.linkSharers = sharers;
  s.encodeElements = n;
  // Throughput is quoted per element of the whole buffer, per payload.
  s.decodeElements = static_cast<double>(N - 1) * n;
  return single("sparse_ag", codec, s);
}

Candidate sparseSplitCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers) {
  // Step 1: each range's top-K to its owner; step 2: the owner's summed
  // range to everyone, as exact pairs or dense values (at most the union of
  // N top-K sets, 8 bytes a pair).
  const size_t chunk = chunkOf(n, N);
  Stage scatter;
  scatter.role = "sparse_scatter";
  scatter.link = link;
  scatter.codec = codec;
  scatter.steps = N > 1 ? 1 : 0;
  scatter.messagesPerStep = N - 1;
  scatter.messageBytes = wireBytes(SparseAllreduce::wireCodec(codec), chunk);
  scatter.linkSharers = sharers;
  scatter.encodeElements = n;
  scatter.decodeElements = static_cast<double>(N) * static_cast<double>(chunk);
  Stage gather = scatter;
  gather.role = "range_allgather";
  gather.codec = CodecParams{};  // exact (index, value) pairs or dense values
  const double pairs = std::min<double>(static_cast<double>(chunk), static_cast<double>(N) * selectedCount(codec, chunk));
  gather.messageBytes = std::min(8.0 * pairs, 4.0 * static_cast<double>(chunk)) + 8;
  gather.encodeElements = 0;
  gather.decodeElements = 0;
  Candidate c;
  c.spec.algorithm = "sparse_split";
  c.spec.codec = codec;
  c.stages = {scatter, gather};
  return c;
}

Candidate randkCandidate(double n, int N, LinkClass link, const CodecParams& codec) {
  const double k = static_cast<double>(selectedCount(codec, static_cast<size_t>(std::ceil(n))));
  const double valueBytesEach = static_cast<double>(valueBytes(codec.values));
  Stage s = ringStage("allreduce", N, link, codec, std::ceil(k / N) * valueBytesEach, 2);
  s.encodeElements = n;  // gather, quoted over the whole input
  s.decodeElements = n;  // scatter into the output, likewise
  return single("randk", codec, s);
}

Candidate gatherCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers) {
  Stage s;
  s.link = link;
  s.steps = N > 1 ? 1 : 0;
  s.messagesPerStep = N - 1;
  s.messageBytes = wireBytes(codec, static_cast<size_t>(std::ceil(n)));
  s.linkSharers = sharers;
  s.encodeElements = n;
  s.decodeElements = static_cast<double>(N) * n;  // all N payloads, its own included, in rank order
  return single("gather", codec, s);
}

std::vector<std::string> algorithmsFor(const CodecParams& codec) {
  std::vector<std::string> names;
  for (const AlgorithmEntry* a : offeredAlgorithms(TunerOffer::kEachLevel, codec)) names.push_back(a->name);
  return names;
}

Candidate flatCandidate(const std::string& algorithm, double n, int N, LinkClass link, const CodecParams& codec,
                        int sharers, int elementBytes) {
  PlanSpec check;
  check.algorithm = algorithm;
  check.codec = codec;
  parsePlanName(planName(check));  // throws for an unknown algorithm or a codec it cannot carry
  const AlgorithmEntry& a = *findAlgorithm(algorithm);
  SQZ_REQUIRE(a.shape, sqzInvalidUsage, "no cost shape for algorithm '%s'", algorithm.c_str());
  return a.shape(ShapeArgs{n, N, link, codec, sharers, elementBytes});
}

Candidate hierarchicalCandidate(double n, const Topology& topo, const CodecParams& intraCodec, const Candidate& inter,
                                int elementBytes) {
  const int G = topo.ranksPerNode;
  const size_t chunk = chunkOf(n, G);
  const double chunkBytes = wireBytes(intraCodec, chunk, elementBytes);
  const bool cast = intraCodec.kind != CodecKind::None;
  Candidate c;
  c.spec = inter.spec;
  c.spec.hierarchical = true;
  c.spec.intraCodec = intraCodec;
  Stage rs = ringStage("intra_reduce_scatter", G, topo.intra, intraCodec, chunkBytes, 1);
  rs.encodeElements = cast ? static_cast<double>(G - 1) / G * n : 0;
  rs.decodeElements = static_cast<double>(G - 1) / G * n;
  c.stages.push_back(rs);
  for (Stage s : inter.stages) {
    // All G shards cross the network at once, so every shape (rings too)
    // shares the node's NICs.
    s.role = "inter_allreduce";
    s.linkSharers = topo.ranksPerNic();
    c.stages.push_back(s);
  }
  Stage ag = ringStage("intra_allgather", G, topo.intra, intraCodec, chunkBytes, 1);
  ag.encodeElements = cast ? static_cast<double>(chunk) : 0;
  ag.decodeElements = cast ? static_cast<double>(G - 1) / G * n : 0;
  c.stages.push_back(ag);
  return c;
}

Candidate candidateFor(const PlanSpec& spec, double n, const Topology& topo, int elementBytes) {
  if (spec.hierarchical) {
    SQZ_REQUIRE(topo.nodes > 1 && topo.ranksPerNode > 1, sqzInvalidUsage,
                "a hierarchical plan needs several nodes of several ranks");
    const double shard = std::ceil(n / topo.ranksPerNode);
    return hierarchicalCandidate(
        n, topo, spec.intraCodec,
        flatCandidate(spec.algorithm, shard, topo.nodes, topo.inter, spec.codec, topo.ranksPerNic(), elementBytes),
        elementBytes);
  }
  const int sharers = topo.nodes > 1 ? topo.ranksPerNic() : 1;
  return flatCandidate(spec.algorithm, n, topo.ranks(), topo.flatLink(), spec.codec, sharers, elementBytes);
}

Stage statsExchangeStage(const Topology& topo, double bytes) {
  const int N = topo.ranks();
  Stage s;
  s.role = "stats_exchange";
  s.link = topo.flatLink();
  s.steps = N > 1 ? 1 : 0;
  s.messagesPerStep = N - 1;
  s.messageBytes = bytes;
  s.linkSharers = topo.nodes > 1 ? topo.ranksPerNic() : 1;
  return s;
}

std::vector<Candidate> allreduceCandidates(double n, const Topology& topo, const std::vector<CodecParams>& levels,
                                           int elementBytes) {
  std::vector<CodecParams> useful;
  for (const CodecParams& c : levels)
    if (elementBytes > 2 || (c.kind != CodecKind::Bf16 && c.kind != CodecKind::Fp16)) useful.push_back(c);
  std::vector<Candidate> out;
  const int N = topo.ranks();
  const int sharers = topo.nodes > 1 ? topo.ranksPerNic() : 1;
  for (const CodecParams& codec : useful)
    for (const std::string& algo : algorithmsFor(codec))
      out.push_back(flatCandidate(algo, n, N, topo.flatLink(), codec, sharers, elementBytes));
  for (const AlgorithmEntry* a : offeredAlgorithms(TunerOffer::kOnce, CodecParams{}))
    out.push_back(flatCandidate(a->name, n, N, topo.flatLink(), CodecParams{}, sharers, elementBytes));
  if (topo.nodes > 1 && topo.ranksPerNode > 1) {
    const double shard = std::ceil(n / topo.ranksPerNode);
    CodecParams bf16;
    bf16.kind = CodecKind::Bf16;
    std::vector<CodecParams> intraCodecs = {CodecParams{}};
    if (elementBytes > 2) intraCodecs.push_back(bf16);
    for (const CodecParams& intra : intraCodecs)
      for (const CodecParams& codec : useful)
        for (const std::string& algo : algorithmsFor(codec))
          out.push_back(hierarchicalCandidate(
              n, topo, intra,
              flatCandidate(algo, shard, topo.nodes, topo.inter, codec, topo.ranksPerNic(), elementBytes),
              elementBytes));
  }
  return out;
}

}  // namespace sqz
