// The allreduce algorithms, one entry each, indexed by AlgorithmId (as
// UCC's ucc_tl_ucp_allreduce_algs): the name plans use, what it does,
// which codecs it carries, how the tuner prices it, when it is the default
// for a call, and how it runs on a flat group. Everything that names,
// prices, chooses or runs an algorithm reads this table: plan names
// (plan_name.cc), the tuner's candidates (allreduce_shapes.cc), the
// communicator's choice and run of a plan (src/comm.cc), calibration's
// plan timing and the device path's choice.
//
// Adding an algorithm is adding its class (collectives/) and one entry:
// an AlgorithmId and its row in algorithm_table.cc. An exact algorithm
// chosen by size is a row that carries no codec, with `prefers` saying
// for which calls; a new codec is a row's `carries` saying where it fits.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "collectives/flat_plan.h"
#include "kernels/codec_params.h"
#include "src/tuner/candidate.h"
#include "src/tuner/link_class.h"

namespace sqz {

enum class AlgorithmId : int {
  kRing,
  kDirect,
  kQa2a,
  kQring,
  kSparseAg,
  kSparseSplit,
  kRandk,
  kGather,
  kHier,
  kShm,
  kShmRs,
  kCount
};

// What a flat algorithm's cost shape is built for (allreduce_shapes.h):
// n fp32-equivalent elements over N ranks on `link`, `sharers` ranks of a
// node pushing through the same link at once, user elements of
// `elementBytes` bytes.
struct ShapeArgs {
  double n = 0;
  int N = 1;
  LinkClass link = LinkClass::Self;
  CodecParams codec;
  int sharers = 1;
  int elementBytes = 4;
};

// What the default choice sees of a call.
struct CallShape {
  CodecParams codec;
  size_t count = 0;           // elements
  size_t bytes = 0;           // count * element size
  int nranks = 1;
  bool multiNode = false;     // ranks on more than one node
  size_t directMaxBytes = 0;  // SQZ_DIRECT_MAX_BYTES
  bool sharedMemory = false;  // every rank on this node, through a mapped segment (collectives/shm_segment.h)
};

// Exact calls up to this size go through shared memory when they can:
// direct's range, where shm was measured faster than direct and ring (above
// it the ring wins: perf/results/latency.md, round 4). TuneTable::defaultText
// says the same.
constexpr size_t kShmPreferredMaxBytes = 12 << 10;
// Above that, shm_rs at every size (in slot-sized pieces past a large slot,
// ShmSegment::largeSlotBytes): measured faster than the ring from 12 KiB to
// 64 MiB on 4 ranks, in place and out of place (perf/results/latency.md,
// rounds 5 and 7). TuneTable::defaultText sends 12-64 KiB there; above,
// @auto's exact choice does. (Across nodes there is no segment, and the
// selector's bound follows the network: TuneTable::autoFromBytesFor.)

// How the tuner offers an algorithm: never, with every codec level it
// carries (flat, and as a hierarchical plan's inter-node stage), or once
// per call without a codec (flat only).
enum class TunerOffer { kNever, kEachLevel, kOnce };

struct AlgorithmEntry {
  AlgorithmId id;
  const char* name;
  const char* description;
  // Its place among the algorithms that carry `codec` (0 first: the order
  // of the tuner's candidates and of the default choice), or -1 when it
  // cannot carry it. Null for hier, which is made of others.
  int (*carries)(const CodecParams& codec);
  const char* carriesText;  // what it carries, for messages
  // The default for a call that names no algorithm is the first that
  // carries the call's codec, runs on host buffers and prefers the call
  // (null: any call).
  bool (*prefers)(const CallShape& call);
  TunerOffer offer;
  Candidate (*shape)(const ShapeArgs& args);  // the cost shape (null: the tuner never prices it)
  FlatRun run;                                // null: not a flat algorithm on host buffers
  bool onDevice;                              // also runs on device buffers (src/device/device_path.h)
  // Its first message can carry the call header (AllreduceArgs::header), so
  // an exact call of headerCanCarry's size agrees and moves data in one round.
  bool carriesHeader;
  // The codecs the tuner offers it with, of those it carries (null: all).
  bool (*tunerCodecs)(const CodecParams& codec) = nullptr;
};

const AlgorithmEntry& algorithmEntry(AlgorithmId id);
// Null when no algorithm has this name.
const AlgorithmEntry* findAlgorithm(const std::string& name);
// Every name, comma-separated (for messages).
std::string algorithmNames();
// Null when `a` carries `codec`, else why not.
const char* cannotCarry(const AlgorithmEntry& a, const CodecParams& codec);
// The algorithms with TunerOffer `offer` that carry `codec`, in order.
std::vector<const AlgorithmEntry*> offeredAlgorithms(TunerOffer offer, const CodecParams& codec);
// The algorithm a host call runs when its plan names none.
const AlgorithmEntry& defaultAlgorithm(const CallShape& call);
// The algorithm a device call runs for `codec` when its plan names none.
const AlgorithmEntry& defaultDeviceAlgorithm(const CodecParams& codec);
// The flat algorithm `name` on host buffers; throws sqzInvalidUsage for
// one that runs elsewhere (gather: device buffers only).
const AlgorithmEntry& hostAlgorithm(const std::string& name);

}  // namespace sqz
