// The static part of selection (DESIGN.md section 3, STYLE.md's UCC model):
// one flat table of message-size ranges per communicator, written and
// overridden in one string syntax, SQZ_TUNE, as UCC's TUNE strings.
//
// Grammar (whitespace is not allowed):
//   table      := entry ( '#' entry )*
//   entry      := collective ':' range [ ':' memtype ] ':' '@' target
//   collective := 'allreduce'
//   range      := size '-' ( size | 'inf' )       lower bound inclusive,
//                                                 upper bound exclusive
//   size       := digits [ 'k' | 'K' | 'm' | 'M' | 'g' | 'G' ]   binary: 64k = 65536
//   memtype    := 'host' | 'cuda'                 absent: both
//   target     := 'auto' | plan                   plan: see plan_name.h
// e.g. "allreduce:0-64k:@ring#allreduce:64k-inf:@qa2a:q4",
//      "allreduce:0-inf:cuda:@hier/none/qa2a:q2", "allreduce:1M-inf:@auto".
// Lookup by (memory type, bytes): the LAST matching entry wins, so text
// appended to the defaults overrides them (defaults + "#" + SQZ_TUNE).
// `@auto` hands the call to the Selector; a plan forces it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/tuner/plan_name.h"

namespace sqz {

class LinkCurve;

enum class MemoryType { Any = 0, Host = 1, Cuda = 2 };

struct TuneEntry {
  std::string collective = "allreduce";
  uint64_t minBytes = 0;
  uint64_t maxBytes = UINT64_MAX;  // exclusive; UINT64_MAX prints as "inf"
  MemoryType memory = MemoryType::Any;
  bool automatic = true;           // "@auto"
  PlanSpec plan;                   // when !automatic

  bool matches(const std::string& coll, MemoryType mem, uint64_t bytes) const;
  std::string target() const { return automatic ? "auto" : planName(plan); }
};

class TuneTable {
 public:
  // Throws sqz::Error(sqzInvalidUsage) saying which entry is malformed and why.
  static TuneTable parse(const std::string& text);
  // Where the built-in defaults hand calls to the selector when every rank
  // shares a node: below it an exact call through shared memory costs less
  // than auto's statistics (perf/results/code_comment_figures.md).
  static constexpr uint64_t kAutoFromBytes = 64 << 10;
  // The lowest bound a network's curve can give (autoFromBytesFor): below a
  // page, auto's statistics (and their agreement round) weigh as much as the
  // payload on any link.
  static constexpr uint64_t kAutoFromMinBytes = 4 << 10;
  // The built-in defaults: exact below `autoFromBytes` (below 12 KiB shm
  // where every rank shares a node, else direct: one round beats the ring's
  // 2(N-1) steps there; above it shm_rs on a shared node, else the ring;
  // perf/results/latency.md rounds 4 and 5), the selector from it up.
  static std::string defaultText(uint64_t autoFromBytes = kAutoFromBytes);
  // The selector's lower bound on a network whose message times `curve`
  // gives: the curve's half-bandwidth size (LinkCurve::halfBandwidthBytes),
  // within [kAutoFromMinBytes, kAutoFromBytes]. Below it a call is mostly
  // latency, which no codec removes, so compression can save less than what
  // the call already costs; above it most of an exact call's time is bytes.
  // The 64 KiB bound had sent a 41 KB layer exactly over a 10 Mbit/s link
  // while a fixed spec compressed it (perf/results/training.md, experiment
  // mlp_auto_from4k).
  static uint64_t autoFromBytesFor(const LinkCurve& curve);
  // defaultText(autoFromBytes), then SQZ_TUNE's entries (which override by
  // coming last).
  static TuneTable fromEnv(uint64_t autoFromBytes = kAutoFromBytes);

  // Canonical text: parse(toString()) gives the same table, and
  // parse(t).toString() == t for canonical t (sizes with the largest exact
  // binary suffix, memtype only when set).
  std::string toString() const;
  // The matching entry, or nullopt when none covers (collective, memory, bytes).
  std::optional<TuneEntry> lookup(const std::string& collective, MemoryType memory, uint64_t bytes) const;

  const std::vector<TuneEntry>& entries() const { return entries_; }
  void append(const TuneTable& later);

 private:
  std::vector<TuneEntry> entries_;
};

const char* memoryTypeName(MemoryType m);  // "any", "host", "cuda"

}  // namespace sqz
