// The cost shapes of the allreduce algorithms (DESIGN.md section 2), for N
// ranks and n fp32-equivalent elements, as the collectives in collectives/
// run them. Each returns a Candidate whose stages the CostModel prices; the
// algorithm table (algorithm_table.h) names each algorithm's shape.
//   ring           exact: 2(N-1) steps, 1 message of n*4/N bytes per step
//   direct         exact: 1 step, N-1 concurrent messages of the whole buffer
//   qa2a           2 steps (all-to-all reduce-scatter, allgather), N-1
//                  concurrent messages of encodedBytes(codec, n/N) each
//   qring          2(N-1) steps, 1 message of encodedBytes(codec, n/N); with
//                  bf16/fp16 this is the cast ring (2-byte values)
//   sparse_ag      1 step, N-1 concurrent messages of K (index, value) pairs
//   sparse_split   2 steps: N-1 messages of a range's top-K payload, then
//                  N-1 messages of the owner's summed range (pairs or dense)
//   randk          the exact ring over the K values (indices from the seed)
//   gather         1 step, N-1 concurrent messages of the whole buffer's
//                  payload, encodedBytes(codec, n); every rank decodes N
//   hier           intra-node ring reduce-scatter (G ranks, intra link),
//                  one flat allreduce per shard of n/G across the M nodes
//                  (inter link, its own codec), intra-node ring allgather
#pragma once

#include <vector>

#include "kernels/codec_params.h"
#include "src/tuner/candidate.h"
#include "src/tuner/codec_throughput.h"
#include "src/tuner/link_class.h"

namespace sqz {

// Where the ranks of a communicator sit.
struct Topology {
  int nodes = 1;
  int ranksPerNode = 1;
  LinkClass intra = LinkClass::Shm;   // between ranks of one node
  LinkClass inter = LinkClass::Tcp;   // between nodes
  int nicsPerNode = 1;                // network links a node's ranks share
  Device device = Device::Cpu;        // where the codecs run

  int ranks() const { return nodes * ranksPerNode; }
  // The link a flat (single-level) algorithm is limited by.
  LinkClass flatLink() const { return nodes > 1 ? inter : intra; }
  // Ranks of a node behind one NIC (>= 1).
  int ranksPerNic() const;
};

// Flat algorithms over N ranks on `link`. `sharers` (Stage::linkSharers)
// applies to the all-to-all shapes, whose messages from all ranks of a node
// leave through the node's NICs at once; a ring crosses each node boundary
// with one hop per step, so its hops do not share.
// `elementBytes`: bytes of one element of the user's buffer (4 for fp32, 2
// for bf16/fp16), which is what the exact algorithms move; the codecs'
// payload sizes come from the wire format.
Candidate ringCandidate(double n, int N, LinkClass link, int elementBytes = 4);
Candidate directCandidate(double n, int N, LinkClass link, int sharers = 1, int elementBytes = 4);
Candidate quantizedA2aCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers = 1);
Candidate codecRingCandidate(double n, int N, LinkClass link, const CodecParams& codec);
Candidate sparseAllgatherCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers = 1);
Candidate sparseSplitCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers = 1);
Candidate randkCandidate(double n, int N, LinkClass link, const CodecParams& codec);
Candidate gatherCandidate(double n, int N, LinkClass link, const CodecParams& codec, int sharers = 1);
// By algorithm name: the algorithm table's cost shape (flat ones).
Candidate flatCandidate(const std::string& algorithm, double n, int N, LinkClass link, const CodecParams& codec,
                        int sharers = 1, int elementBytes = 4);
// The algorithms the tuner offers with each level of `codec`, in candidate
// order (the algorithm table's TunerOffer::kEachLevel).
std::vector<std::string> algorithmsFor(const CodecParams& codec);
// Hierarchical: intra stages on topo.intra with intraCodec (none, bf16 or
// fp16), `inter` built for ceil(n / ranksPerNode) elements over topo.nodes.
Candidate hierarchicalCandidate(double n, const Topology& topo, const CodecParams& intraCodec,
                                const Candidate& inter, int elementBytes = 4);
// The candidate a PlanSpec names, on this topology (a forced plan).
Candidate candidateFor(const PlanSpec& spec, double n, const Topology& topo, int elementBytes = 4);

// auto's lagged statistics (`bytes` each) going to every other rank at
// once, overlapped with the call's own messages on the flat link: every
// tuned call pays its transfer (at 10 Mbit/s, 3 x 4 KiB cost about as much
// as top-K 0.1%'s payload of a 4 MiB buffer).
Stage statsExchangeStage(const Topology& topo, double bytes);

// Every candidate for a call: each level on each algorithm that carries it,
// the exact algorithms offered once (direct), and, with more than one node of more than one rank, hierarchical
// plans with an exact or bf16 intra stage and each flat plan between
// nodes. Fixed order (the exact ring first), so ties break the same way on
// every rank. With 2-byte elements, bf16/fp16 levels are skipped (the
// exact path already moves 2 bytes per element).
std::vector<Candidate> allreduceCandidates(double n, const Topology& topo, const std::vector<CodecParams>& levels,
                                           int elementBytes = 4);

}  // namespace sqz
