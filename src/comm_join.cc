// Horovod's join for uneven data: a rank out of data keeps answering the
// other ranks' calls until every rank is out. It learns each call from the
// call header alone (collectives/call_agreement.h), so it takes part only in
// what needs no more than that: host allreduces on the exact path, with
// zeros. A small one's data came with the others' headers, and they read
// this rank's missing payload as zeros: nothing more to send; a larger one
// gets zeros in its data exchange. The others send exactly while any rank
// has joined (their residuals wait, except in a call whose data came with
// its header, which sends g + e as usual), and fail any other collective on
// every rank.
#include <chrono>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "common/log.h"
#include "src/comm.h"

namespace sqz {

int Communicator::join() {
  LogRankScope logRank(rank_);
  drainDevice();
  CallHeader mine;
  mine.kind = static_cast<uint32_t>(CollectiveKind::kJoin);
  mine.count = seq_;  // calls made before joining: who joined last
  mine.tag = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  callTag_ = 0;
  std::vector<unsigned char> zeros;
  HeaderRound round;
  for (;;) {
    AllreduceArgs a;
    a.seq = nextSeq();
    a.deadline = callDeadline();
    const std::vector<CallHeader>& all = round.exchange(*transport_, a.seq, mine, nullptr, 0, a.deadline, shm_.get());
    const CallVerdict v = judgeCall(all, round.carriedBytes());
    if (v.joined == size_) {
      const int last = lastJoinedRank(all);
      SQZ_INFO("join: every rank has joined; rank %d joined last", last);
      return last;
    }
    // The others count their allreduces, failed ones too, and key the random
    // stream of calls without a state by that count (implicit_states.h).
    if (all[v.first].kind == static_cast<uint32_t>(CollectiveKind::kAllReduce)) ++calls_;
    if (!v.error.empty()) continue;  // the others fail this call; nothing moves
    // The others' data came with their headers (a small exact call): they
    // read this rank's missing payload as zeros, and the call is over.
    if (v.carried > 0 || (v.flags & kFlagDataInSegment)) continue;
    const CallHeader& call = all[v.first];
    SQZ_REQUIRE(validDataType(call.dtype) && validRedOp(call.op), sqzInternalError,
                "join: rank %d's allreduce header has type %d op %d", v.first, call.dtype, call.op);
    a.type = static_cast<sqzDataType_t>(call.dtype);
    a.op = static_cast<sqzRedOp_t>(call.op);
    a.count = call.count;
    if (a.count == 0) continue;
    SQZ_REQUIRE(a.count <= SIZE_MAX / dataTypeSize(a.type) / 2, sqzInternalError, "join: count %zu is too large",
                a.count);
    zeros.assign(a.count * dataTypeSize(a.type), 0);
    a.send = a.recv = zeros.data();
    CallCounters counters;
    runExact(a, chooseAlgorithm(CodecParams{}, a.count, a.type), nullptr, &counters);
  }
}

}  // namespace sqz
