#include "src/tuner/algorithm_table.h"

#include <algorithm>
#include <utility>

#include "collectives/codec_ring_allreduce.h"
#include "collectives/gather_allreduce.h"
#include "collectives/quantized_allreduce.h"
#include "collectives/randk_allreduce.h"
#include "collectives/ring_allreduce.h"
#include "collectives/shm_allreduce.h"
#include "collectives/shm_rs_allreduce.h"
#include "collectives/sparse_allreduce.h"
#include "common/dtype.h"
#include "common/error.h"
#include "kernels/wire_format.h"
#include "src/tuner/allreduce_shapes.h"

namespace sqz {
namespace {

// What the algorithms carry.
bool lossyDense(const CodecParams& c) {
  return c.kind == CodecKind::Bf16 || c.kind == CodecKind::Fp16 || c.kind == CodecKind::Quant ||
         c.kind == CodecKind::Sign;
}
// Quantizers and the scaled sign: qa2a first (one re-encoding, at the owner).
bool blockCodec(const CodecParams& c) { return c.kind == CodecKind::Quant || c.kind == CodecKind::Sign; }
int topk(const CodecParams& c) { return c.kind == CodecKind::TopK ? 0 : -1; }

// Bytes this rank sends in an exact algorithm, counted as the compressed
// ones count theirs.
void countExact(const CompressedArgs& a, double bytesSent) { a.tally().wireBytes += static_cast<size_t>(bytesSent); }
double bytesOf(const AllreduceArgs& b) { return static_cast<double>(b.count * dataTypeSize(b.type)); }

// The scaled sign's default on host buffers: gather (one encoding per
// element) while its (N - 1) payloads per rank are fewer bytes than the exact
// ring sends, i.e. below about 57 ranks for fp32 at block 256 (P = n / 8 +
// 4 n / 256 bytes against 8 n (N - 1) / N). A second encoding of a sum
// (qa2a's owner, qring's hops) is what costs the sign accuracy, since its
// error is relative to the sum of the ranks' gradients and is not averaged
// over them (perf/results/training.md, issue 14's sign sections). Beyond that
// count qa2a or qring, as for the quantizers.
bool signGatherPays(const CallShape& c) {
  return c.codec.kind == CodecKind::Sign && c.nranks > 1 &&
         GatherAllreduce::bytesSentPerRank(static_cast<double>(encodedBytes(c.codec, c.count)), c.nranks) <
             RingAllreduce::bytesSentPerRank(static_cast<double>(c.bytes), c.nranks);
}

// The tuner offers the scaled sign through gather only (below): a second
// encoding of a sum is where the sign loses accuracy, and gather is what
// the training matrix measured it on.
bool notSign(const CodecParams& c) { return c.kind != CodecKind::Sign; }

bool sparseSplitSendsLess(const CallShape& c) {
  return SparseAllreduce::bytesSentPerRank(c.codec, c.count, c.nranks, SparseAllreduce::Shape::kSplit) <
         SparseAllreduce::bytesSentPerRank(c.codec, c.count, c.nranks, SparseAllreduce::Shape::kAllgather);
}

// In AlgorithmId order.
const AlgorithmEntry kTable[] = {
    // The exact ones: within a node shm up to kShmPreferredMaxBytes, then
    // shm_rs; across nodes direct up to SQZ_DIRECT_MAX_BYTES, else ring.
    {AlgorithmId::kRing, "ring", "exact ring reduce-scatter + allgather",
     [](const CodecParams& c) { return c.kind == CodecKind::None ? 2 : -1; }, "no codec (it is exact)", nullptr,
     TunerOffer::kEachLevel,
     [](const ShapeArgs& s) { return ringCandidate(s.n, s.N, s.link, s.elementBytes); },
     [](FlatAllreduces& f, const CompressedArgs& a) {
       f.ring().run(a.base);
       countExact(a, RingAllreduce::bytesSentPerRank(bytesOf(a.base), f.transport().size()));
     },
     true, false},
    {AlgorithmId::kDirect, "direct",
     "exact all-to-all: every rank sends its whole buffer to every other rank (small buffers)",
     [](const CodecParams& c) { return c.kind == CodecKind::None ? 1 : -1; }, "no codec (it is exact)",
     [](const CallShape& c) { return c.nranks > 1 && c.bytes <= c.directMaxBytes; }, TunerOffer::kOnce,
     [](const ShapeArgs& s) { return directCandidate(s.n, s.N, s.link, s.sharers, s.elementBytes); },
     [](FlatAllreduces& f, const CompressedArgs& a) {
       f.direct().run(a.base);
       countExact(a, DirectAllreduce::bytesSentPerRank(bytesOf(a.base), f.transport().size()));
     },
     false, true},
    // Within a node, the all-to-all's 2 rounds of N-1 concurrent messages
    // beat the ring's 2(N-1) steps; across a network, or for many ranks,
    // the ring's one flow per link wins (perf/results/compressed_testbed.md).
    {AlgorithmId::kQa2a, "qa2a",
     "all-to-all reduce-scatter of encoded chunks, owner re-encodes its sum, all-to-all allgather",
     [](const CodecParams& c) { return blockCodec(c) ? 0 : lossyDense(c) ? 1 : -1; },
     "bf16, fp16, a quantizer (q1, q2, q4, q8) or sign",
     [](const CallShape& c) { return blockCodec(c.codec) && c.nranks <= 16 && !c.multiNode && !signGatherPays(c); },
     TunerOffer::kEachLevel,
     [](const ShapeArgs& s) { return quantizedA2aCandidate(s.n, s.N, s.link, s.codec, s.sharers); },
     [](FlatAllreduces& f, const CompressedArgs& a) { f.get<QuantizedAllreduce>(f.transport()).run(a); }, false, false,
     notSign},
    {AlgorithmId::kQring, "qring",
     "ring of encoded chunks (re-encoded at each hop): casts and quantizers at large rank counts",
     [](const CodecParams& c) { return blockCodec(c) ? 1 : lossyDense(c) ? 0 : -1; },
     "bf16, fp16, a quantizer (q1, q2, q4, q8) or sign", nullptr, TunerOffer::kEachLevel,
     [](const ShapeArgs& s) { return codecRingCandidate(s.n, s.N, s.link, s.codec); },
     [](FlatAllreduces& f, const CompressedArgs& a) {
       f.get<CodecRingAllreduce>(f.transport(), f.chunkBytes()).run(a);
     },
     false, false, notSign},
    {AlgorithmId::kSparseAg, "sparse_ag", "top-K (index, value) pairs allgathered and scatter-added", topk,
     "topk:R", [](const CallShape& c) { return !sparseSplitSendsLess(c); }, TunerOffer::kEachLevel,
     [](const ShapeArgs& s) { return sparseAllgatherCandidate(s.n, s.N, s.link, s.codec, s.sharers); },
     [](FlatAllreduces& f, const CompressedArgs& a) {
       f.get<SparseAllreduce>(f.transport(), f.ring()).run(a, SparseAllreduce::Shape::kAllgather);
     },
     false, false},
    {AlgorithmId::kSparseSplit, "sparse_split",
     "top-K pairs of index range j sent to rank j, which sums and allgathers its range",
     [](const CodecParams& c) { return topk(c) == 0 ? 1 : -1; }, "topk:R", nullptr, TunerOffer::kEachLevel,
     [](const ShapeArgs& s) { return sparseSplitCandidate(s.n, s.N, s.link, s.codec, s.sharers); },
     [](FlatAllreduces& f, const CompressedArgs& a) {
       f.get<SparseAllreduce>(f.transport(), f.ring()).run(a, SparseAllreduce::Shape::kSplit);
     },
     false, false},
    {AlgorithmId::kRandk, "randk", "random-K with a shared seed: the K values go through the exact ring",
     [](const CodecParams& c) { return c.kind == CodecKind::RandK ? 0 : -1; }, "randk:R", nullptr,
     TunerOffer::kEachLevel, [](const ShapeArgs& s) { return randkCandidate(s.n, s.N, s.link, s.codec); },
     [](FlatAllreduces& f, const CompressedArgs& a) {
       f.get<RandkAllreduce>(f.ring(), f.transport().size()).run(a);
     },
     true, false},
    // On host buffers the scaled sign's default while it sends less than the
    // exact ring (signGatherPays), else only when a plan names it: one
    // encoding per element, but (N - 1) payloads sent per rank. The tuner
    // offers it with the scaled sign only (and the sign only with it): the
    // quantizers' re-encoding is unbiased, and qa2a and qring send fewer
    // bytes.
    {AlgorithmId::kGather, "gather",
     "each rank encodes its whole buffer once, the payloads are allgathered, every rank decodes all of them in "
     "rank order (device buffers' default; on host buffers the scaled sign's, or when a plan names it)",
     [](const CodecParams& c) { return lossyDense(c) || c.kind == CodecKind::TopK ? 0 : -1; },
     "bf16, fp16, a quantizer, sign or topk:R", signGatherPays, TunerOffer::kEachLevel,
     [](const ShapeArgs& s) { return gatherCandidate(s.n, s.N, s.link, s.codec, s.sharers); },
     [](FlatAllreduces& f, const CompressedArgs& a) { f.get<GatherAllreduce>(f.transport()).run(a); }, true, false,
     [](const CodecParams& c) { return c.kind == CodecKind::Sign; }},
    {AlgorithmId::kHier, "hier", "intra-node reduce-scatter, inter-node allreduce per shard, intra-node allgather",
     nullptr, "hier/INTRA_CODEC/ALGORITHM[:CODEC]", nullptr, TunerOffer::kNever, nullptr, nullptr, false, false},
    // Where it cannot run (ranks on several nodes, no segment, a buffer
    // larger than a slot) the communicator runs the exact default without
    // it instead (Communicator::agreeOnPlan).
    {AlgorithmId::kShm, "shm",
     "exact, within one node: every rank copies its buffer into a shared-memory slot, waits once, and reduces all "
     "slots in rank order (small buffers)",
     [](const CodecParams& c) { return c.kind == CodecKind::None ? 0 : -1; }, "no codec (it is exact)",
     [](const CallShape& c) {
       return c.nranks > 1 && c.sharedMemory && c.bytes <= kShmPreferredMaxBytes && ShmAllreduce::fits(c.bytes);
     },
     TunerOffer::kNever, nullptr,
     [](FlatAllreduces& f, const CompressedArgs& a) {
       SQZ_CHECK(f.segment() != nullptr, "shm allreduce without a shared segment");
       f.get<ShmAllreduce>(f.transport(), *f.segment()).run(a.base);
       countExact(a, bytesOf(a.base));
     },
     false, true},
    {AlgorithmId::kShmRs, "shm_rs",
     "exact, within one node: every rank copies its buffer into a large shared-memory slot, reduces its 1/N of "
     "the elements across all slots in rank order, and copies the whole result out (medium buffers)",
     [](const CodecParams& c) { return c.kind == CodecKind::None ? 0 : -1; }, "no codec (it is exact)",
     [](const CallShape& c) {
       return c.nranks > 1 && c.sharedMemory && c.bytes > kShmPreferredMaxBytes;
     },
     TunerOffer::kNever, nullptr,
     [](FlatAllreduces& f, const CompressedArgs& a) {
       SQZ_CHECK(f.segment() != nullptr, "shm_rs allreduce without a shared segment");
       f.get<ShmRsAllreduce>(f.transport(), *f.segment()).run(a.base);
       countExact(a, bytesOf(a.base));
     },
     false, true},
};

constexpr size_t kEntries = sizeof kTable / sizeof kTable[0];
static_assert(kEntries == static_cast<size_t>(AlgorithmId::kCount), "one table entry per AlgorithmId");

bool inIdOrder() {
  for (size_t i = 0; i < kEntries; ++i)
    if (static_cast<size_t>(kTable[i].id) != i) return false;
  return true;
}

// The entries that carry `codec` and pass `keep`, in carries() order
// (table order among equals).
template <typename Keep>
std::vector<const AlgorithmEntry*> carrying(const CodecParams& codec, Keep keep) {
  std::vector<std::pair<int, const AlgorithmEntry*>> found;
  for (const AlgorithmEntry& a : kTable) {
    const int place = a.carries ? a.carries(codec) : -1;
    if (place != -1 && keep(a)) found.emplace_back(place, &a);
  }
  std::stable_sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<const AlgorithmEntry*> out;
  for (const auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace

const AlgorithmEntry& algorithmEntry(AlgorithmId id) {
  static const bool ordered = inIdOrder();
  SQZ_CHECK(ordered, "the algorithm table is not in AlgorithmId order");
  const auto i = static_cast<size_t>(id);
  SQZ_CHECK(i < kEntries, "algorithm id %zu", i);
  return kTable[i];
}

const AlgorithmEntry* findAlgorithm(const std::string& name) {
  for (const AlgorithmEntry& a : kTable)
    if (name == a.name) return &a;
  return nullptr;
}

std::string algorithmNames() {
  std::string out;
  for (const AlgorithmEntry& a : kTable) out += std::string(out.empty() ? "" : ", ") + a.name;
  return out;
}

const char* cannotCarry(const AlgorithmEntry& a, const CodecParams& codec) {
  if (!a.carries || a.carries(codec) == -1) return a.carriesText;
  return nullptr;
}

std::vector<const AlgorithmEntry*> offeredAlgorithms(TunerOffer offer, const CodecParams& codec) {
  return carrying(codec, [&](const AlgorithmEntry& a) {
    return a.offer == offer && a.shape != nullptr && (!a.tunerCodecs || a.tunerCodecs(codec));
  });
}

const AlgorithmEntry& defaultAlgorithm(const CallShape& call) {
  // carrying()'s order (by carries() place, table order among equals)
  // without its vectors: every call without a named plan comes here.
  auto place = [&](const AlgorithmEntry& a) { return a.run && a.carries ? a.carries(call.codec) : -1; };
  int maxPlace = -1;
  for (const AlgorithmEntry& a : kTable) maxPlace = std::max(maxPlace, place(a));
  const AlgorithmEntry* last = nullptr;
  for (int at = 0; at <= maxPlace; ++at) {
    for (const AlgorithmEntry& a : kTable) {
      if (place(a) != at) continue;
      if (!a.prefers || a.prefers(call)) return a;
      last = &a;
    }
  }
  SQZ_CHECK(last != nullptr, "no host algorithm carries codec kind %d", static_cast<int>(call.codec.kind));
  return *last;
}

const AlgorithmEntry& defaultDeviceAlgorithm(const CodecParams& codec) {
  const std::vector<const AlgorithmEntry*> device =
      carrying(codec, [](const AlgorithmEntry& a) { return a.onDevice; });
  SQZ_CHECK(!device.empty(), "no device algorithm carries codec kind %d", static_cast<int>(codec.kind));
  return *device.front();
}

const AlgorithmEntry& hostAlgorithm(const std::string& name) {
  const AlgorithmEntry* a = findAlgorithm(name);
  SQZ_CHECK(a != nullptr, "no algorithm '%s'", name.c_str());
  if (!a->run) {
    std::string host;
    for (const AlgorithmEntry& e : kTable)
      if (e.run) host += std::string(host.empty() ? "" : ", ") + e.name;
    fail(sqzInvalidUsage, "plan '%s' runs on %s only (host buffers: %s)", name.c_str(),
         a->onDevice ? "device buffers" : "several nodes, as hier/...", host.c_str());
  }
  return *a;
}

}  // namespace sqz
