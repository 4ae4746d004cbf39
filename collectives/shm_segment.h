// One POSIX shared-memory segment per communicator whose ranks all share a
// node: every rank owns a slot per call parity, holding a call header and
// up to kPayloadMaxBytes of data. A call's exchange writes this rank's slot,
// publishes it with a release store of the call's number, and waits (acquire)
// until every rank has published the same call: one wait per call. Slots
// alternate by parity, so a rank may only overwrite its slot of call k + 2
// once every rank has published call k + 1, i.e. finished reading call k.
//
// After the slots, a large area: one large slot per rank and one result
// area, each largeSlotBytes(nranks) long (min(kLargeSlotCapBytes,
// kLargeAreaBudgetBytes / (nranks + 1)): at most 32 MiB per communicator),
// for the medium-size allreduce (collectives/shm_rs_allreduce.h). These
// need no parity: a rank writes them only after an exchange that every rank
// reaches after it has finished reading them.
//
// On a communicator with a segment, every call's first round goes through
// it (HeaderRound with a segment): two ranks whose calls differ always meet
// there and disagree cleanly. A wait is bounded by the call's deadline
// (SQZ_TIMEOUT); a rank that gives up or aborts marks the segment failed,
// so the others fail at once instead of waiting out their own bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "collectives/call_agreement.h"
#include "sqz.h"
#include "transport/transport.h"

namespace sqz {

class ShmSegment {
 public:
  // The data a call may carry with its header (as over the transport).
  static constexpr size_t kPayloadMaxBytes = kHeaderPayloadMaxBytes;
  // The large area's bounds (see above).
  static constexpr size_t kLargeSlotCapBytes = size_t{4} << 20;
  static constexpr size_t kLargeAreaBudgetBytes = size_t{32} << 20;
  // A wait's default remoteSpinPolls_ (perf/results/latency.md, round 8).
  static constexpr unsigned kRemoteSpinPolls = 256;
  static size_t largeSlotBytes(int nranks);

  // Collective over `transport` (every rank on this node): the lowest rank
  // creates the segment, the others map it after learning its name (two
  // rounds under `seq` and `seq + 1`), and it is unlinked as soon as every
  // rank has mapped it, so a crash leaks nothing. Null on every rank when
  // any rank cannot map it (or is not `enabled`): the caller keeps the
  // transport. `enabled`: false for this rank (SQZ_SHM=0) means none.
  // `spinPolls`: idle polls before a wait yields the core.
  static std::unique_ptr<ShmSegment> join(Transport& transport, uint32_t seq, bool enabled, unsigned spinPolls,
                                          const Deadline& deadline);
  ~ShmSegment();
  ShmSegment(const ShmSegment&) = delete;
  ShmSegment& operator=(const ShmSegment&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Publishes `mine` and `payloadBytes` (<= kPayloadMaxBytes) of `payload`
  // as this rank's next call and waits until every rank has published it.
  // Throws sqzTimeout past `deadline`, sqzRemoteError when a rank failed
  // (marked here, or known to `transport`: Transport::checkPeers).
  void exchange(Transport& transport, const CallHeader& mine, const void* payload, size_t payloadBytes,
                const Deadline& deadline);
  // Rank r's header, carried bytes and payload in the last exchange (valid
  // until this rank's next exchange).
  const CallHeader& header(int r) const;
  size_t carried(int r) const;
  const unsigned char* payload(int r) const;

  // Rank r's large slot, and the result area (largeSlotBytes(size()) each).
  unsigned char* largeSlot(int r) const;
  unsigned char* resultArea() const;

  // Tells the other ranks this one has failed (abort, or a wait gave up).
  void markFailed();

  // Test hook: the next join() as rank `rank` (of any communicator in this
  // process) acts as if it could not map the segment.
  static void refuseNextJoinOfRank(int rank);
  // Test hook: polls that waits in this process spun past their
  // spinPolls (while every missing rank last ran on another CPU).
  static uint64_t pollsSpunPastSpinPolls();

  struct Layout;  // the shared bytes (shm_segment.cc): a header line,
  struct Slot;    // then a slot per rank and call parity

 private:
  ShmSegment(int rank, int size, void* base, size_t bytes, unsigned spinPolls);
  Slot& slot(uint64_t call, int r) const;
  [[noreturn]] void failWaiting(sqzResult_t code, int r, const char* why);
  // Whether a rank from `from` on has not published `call` and last ran on `cpu`.
  bool aMissingRankRanOn(uint64_t call, int cpu, int from) const;
  // Fails this exchange (`call`) when a rank marked the segment failed
  // before it had completed `call`: that rank will not take part in it.
  void failIfAFailedRankMissed(uint64_t call);

  int rank_, size_;
  void* base_;
  size_t bytes_;
  unsigned spinPolls_;
  // Polls a wait spins while every missing rank last ran on another CPU
  // (SQZ_SHM_REMOTE_SPIN_POLLS; never fewer than spinPolls_).
  unsigned remoteSpinPolls_;
  uint64_t calls_ = 0;      // exchanges so far: identical on every rank
  uint64_t completed_ = 0;  // exchanges this rank completed (all ranks had published)
  bool broken_ = false;
};

}  // namespace sqz
