#include "src/tuner/calibration.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "collectives/call_agreement.h"
#include "collectives/codec_buffers.h"
#include "collectives/flat_plan.h"
#include "common/dtype.h"
#include "common/log.h"
#include "kernels/cpu_codec.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/algorithm_table.h"

namespace sqz {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One ring step: `bytes` from `out` to the right neighbour while as many
// arrive from the left one into `in`.
void ringStep(Transport& t, Tag tag, const void* out, void* in, size_t bytes, const Deadline& deadline) {
  const int n = t.size(), r = t.rank();
  std::vector<RequestId> ids;
  ids.push_back(t.postRecv((r + n - 1) % n, tag, in, bytes));
  ids.push_back(t.postSend((r + 1) % n, tag, out, bytes));
  t.waitAll(ids, deadline);
}

// The largest of every rank's `value`, on every rank: n-1 hops around the
// ring on tags {seq, *slot...}.
double maxOverRanks(Transport& t, double value, uint32_t seq, uint32_t* slot) {
  const Deadline deadline = Deadline::fromTimeout();
  double slowest = value;
  for (int hop = 0; hop + 1 < t.size(); ++hop) {
    double incoming = 0;
    ringStep(t, Tag{seq, (*slot)++}, &slowest, &incoming, sizeof incoming, deadline);
    slowest = std::max(slowest, incoming);
  }
  return slowest;
}

}  // namespace

LinkCurve measureRingStepCurve(Transport& t, const CalibrationOptions& o) {
  const int n = t.size();
  std::vector<double> sizes = LinkCurve::standardSizes();
  if (o.quick) sizes.resize(8);  // up to 16 MiB
  const int baseRepeats = o.quick ? 3 : 7;
  std::vector<unsigned char> sendBuf(static_cast<size_t>(sizes.back()), 1), recvBuf(sendBuf.size());
  std::vector<LinkCurve::Point> points;
  uint32_t slot = 0;
  const Deadline deadline = Deadline::fromTimeout();
  for (double size : sizes) {
    const size_t bytes = static_cast<size_t>(size);
    std::vector<double> times;
    // Every size sends at least kCalibrationDrainBytes back to back, and
    // only the second half of its repeats is timed: a shaper's burst
    // allowance (tbf's bucket, up to half that volume) has drained by then,
    // so the median is the steady rate that a job's consecutive calls see,
    // not the burst that a few small messages ride.
    const int repeats = std::max(baseRepeats, static_cast<int>(std::ceil(kCalibrationDrainBytes / size)));
    const int timedFrom = repeats - std::max(baseRepeats, repeats / 2);  // rep 0 always warms up
    // The median is over batches of steps, not over steps. A rank that the
    // host deschedules between two steps idles every link of the ring; the
    // shaper refills, and the next steps ride that credit. Per step, on a
    // loaded host (ASan tests under ctest -j2), more than half the steps
    // were such credited ones: 1 KiB at 4 MB/s measured 95-194 us against
    // its 256. Over a batch of kCalibrationStepBatchBytes the stall and the
    // credit it bought cancel; on an unshaped link a rare stall is one slow
    // batch, which the median drops. Not every load is absorbed: ASan
    // beside other tests still gave 0.63-0.76x the rate in 4 of 24 runs
    // (22 of 24 per step). A mean over all steps would absorb any stall the
    // shaper pays back, but would also count an unshaped link's stalls.
    const int batch = std::clamp(static_cast<int>(kCalibrationStepBatchBytes / size), 1, repeats - timedFrom);
    double batchStart = 0;
    int inBatch = 0;
    for (int rep = 0; rep <= repeats; ++rep) {
      if (n < 2) break;
      if (rep == timedFrom + 1) batchStart = now();
      ringStep(t, Tag{o.tagSeq, slot++}, sendBuf.data(), recvBuf.data(), bytes, deadline);
      if (rep > timedFrom && ++inBatch == batch) {
        const double end = now();
        times.push_back((end - batchStart) / batch);
        batchStart = end;
        inBatch = 0;
      }
    }
    double seconds = times.empty() ? 1e-9 : median(times);
    if (!points.empty()) seconds = std::max(seconds, points.back().seconds);  // curves do not decrease
    points.push_back({size, std::max(seconds, 1e-9)});
    // On slow links the large sizes are bandwidth-bound and cost minutes;
    // once a step takes longer than the budget on the slowest rank, stop
    // (the curve extrapolates linearly). The slowest time reaches every
    // rank around the ring, so all ranks stop at the same size.
    if (maxOverRanks(t, seconds, o.tagSeq, &slot) > (o.quick ? 0.25 : 2.0)) break;
  }
  return LinkCurve(std::move(points));
}

void drainLinks(Transport& t, double bytes, const CalibrationOptions& o) {
  if (t.size() < 2 || bytes <= 0) return;
  constexpr size_t kMessage = 64 << 10;
  std::vector<unsigned char> out(kMessage, 1), in(kMessage);
  const Deadline deadline = Deadline::fromTimeout();
  const uint32_t messages = static_cast<uint32_t>(std::ceil(bytes / kMessage));
  for (uint32_t m = 0; m < messages; ++m) ringStep(t, Tag{o.tagSeq, m}, out.data(), in.data(), kMessage, deadline);
}

double measureLinkBurstBytes(Transport& t, const CalibrationOptions& o) {
  if (t.size() < 2) return 0;
  uint32_t slot = 0;
  auto timedSend = [&] {
    slowestRank(t, 0.0, o, &slot);  // start together
    const double start = now();
    drainLinks(t, kCalibrationDrainBytes, o);
    return slowestRank(t, now() - start, o, &slot);
  };
  slowestRank(t, 0.0, o, &slot);
  std::this_thread::sleep_for(std::chrono::duration<double>(kBurstIdleSeconds));
  const double afterIdle = timedSend();
  const double drained1 = timedSend(), drained2 = timedSend();
  const double drained = std::min(drained1, drained2);
  if (drained <= 0) return 0;
  // Less the drained sends' own spread: on an unshaped link in memory the
  // send after idle came out 6-10% faster by chance in half the runs of
  // the unit test, which read as a 60-100 KB burst.
  const double gain = drained - afterIdle - std::fabs(drained1 - drained2);
  const double burst = kCalibrationDrainBytes / drained * gain;
  return burst > 0.05 * kCalibrationDrainBytes ? burst : 0.0;
}

double measureCallRoundSeconds(Transport& t, const CalibrationOptions& o) {
  const int n = t.size(), me = t.rank();
  if (n < 2) return 0;
  const Deadline deadline = Deadline::fromTimeout();
  constexpr size_t kBytes = sizeof(CallHeader);
  std::vector<unsigned char> out(kBytes, 1), in(kBytes * static_cast<size_t>(n));
  std::vector<double> times;
  const uint32_t seq = o.tagSeq + tags::kCallRoundSeq;  // the ring-step curve uses tagSeq
  for (uint32_t rep = 0; rep < 12; ++rep) {
    const double start = now();
    std::vector<RequestId> ids;
    for (int r = 0; r < n; ++r)
      if (r != me) ids.push_back(t.postRecv(r, Tag{seq, rep}, &in[kBytes * r], kBytes));
    for (int r = 0; r < n; ++r)
      if (r != me) ids.push_back(t.postSend(r, Tag{seq, rep}, out.data(), kBytes));
    t.waitAll(ids, deadline);
    if (rep >= 2) times.push_back(now() - start);  // two warm-up rounds
  }
  return median(times);
}

CodecThroughput measureCpuCodecThroughput(bool quick) {
  const size_t n = quick ? (size_t{1} << 20) : (size_t{1} << 24);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  std::vector<float> g(n), residual(n), acc(n);
  for (float& x : g) x = normal(rng);
  const int repeats = quick ? 3 : 5;  // after one untimed warm-up (page faults, caches)
  CodecThroughput out;
  // Statistics pass, shared by every level.
  std::vector<double> statTimes;
  for (int i = 0; i <= repeats; ++i) {
    GradStats s;
    clearStats(&s);
    const double t0 = now();
    gradStatsCpu(g.data(), sqzFloat32, residual.data(), n, &s);
    if (i > 0) statTimes.push_back(now() - t0);
  }
  const double statsRate = 4.0 * n / median(statTimes);
  // Every family auto can rank: the scaled signs too (sign:rot's rotation is
  // a transform each way, its own rates), else they are priced at defaults
  // measured on another machine.
  for (const char* name : {"none", "bf16", "q8", "q4", "q2", "q1", "sign", "sign:rot", "topk:0.01", "randk:0.01"}) {
    const CodecParams p = parseCodecSpec(name);
    std::vector<unsigned char> payload(encodedBytes(p, n));
    std::vector<double> enc, dec;
    for (int i = 0; i <= repeats; ++i) {
      std::fill(residual.begin(), residual.end(), 0.0f);
      EncodeArgs a;
      a.input = g.data();
      a.count = n;
      a.residual = residual.data();
      a.seed = 1;
      a.step = static_cast<uint64_t>(i);
      double t0 = now();
      encodeCpu(p, a, payload.data(), payload.size());
      if (i > 0) enc.push_back(now() - t0);
      DecodeExpect e;
      e.params = p;
      e.count = n;
      e.seed = 1;
      e.step = static_cast<uint64_t>(i);
      t0 = now();
      decodeCpu(e, payload.data(), payload.size(), acc.data(), DecodeMode::Accumulate);
      if (i > 0) dec.push_back(now() - t0);
    }
    out.set(Device::Cpu, codecFamily(p), {4.0 * n / median(enc), 4.0 * n / median(dec), statsRate});
  }
  return out;
}

double slowestRank(Transport& t, double value, const CalibrationOptions& o, uint32_t* slot) {
  return maxOverRanks(t, value, o.tagSeq + tags::kSlowestRankSeq, slot);
}

std::map<std::string, double> measurePlanSeconds(Transport& t, const std::vector<PlanToTime>& plans, const void* input,
                                                 sqzDataType_t type, size_t count, const CalibrationOptions& o) {
  std::map<std::string, double> out;
  const int n = t.size();
  if (n < 2 || count == 0) return out;
  FlatAllreduces flat(t, o.chunkBytes);
  std::vector<unsigned char> recv(count * dataTypeSize(type));
  std::vector<float> residual(count), ownerResidual(EvenSplit{count, static_cast<size_t>(n)}.length(0));
  // quick: 3 timed runs, the first also warming up (the median shrugs it
  // off); full: a separate warm-up and 5 timed runs.
  const int repeats = o.planRepeats > 0 ? o.planRepeats : o.quick ? 3 : 5, firstTimed = o.quick ? 0 : 1;
  uint32_t slot = 0, seq = o.tagSeq + tags::kPlanRunSeqs;  // one sequence number per run
  // Cheapest first, so that the plans a call is likely to pick are timed
  // before the time budget runs out (the order is the same on every rank).
  std::vector<const PlanToTime*> order;
  for (const PlanToTime& p : plans)
    if (!p.spec.hierarchical && p.predictedSeconds <= o.planBudgetSeconds) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(), [](const PlanToTime* a, const PlanToTime* b) {
    return a->predictedSeconds < b->predictedSeconds;
  });
  const double start = now();
  double drainSeconds = 0;
  for (const PlanToTime* pp : order) {
    const PlanToTime& p = *pp;
    const FlatRun run = hostAlgorithm(p.spec.algorithm).run;
    if (o.planDrainBytes > 0) {
      const double drainStart = now();
      drainLinks(t, o.planDrainBytes, o);
      drainSeconds += now() - drainStart;
    }
    std::vector<double> times;
    for (int rep = 0; rep < repeats + firstTimed; ++rep) {
      std::fill(residual.begin(), residual.end(), 0.0f);
      std::fill(ownerResidual.begin(), ownerResidual.end(), 0.0f);
      CallCounters counters;
      CompressedArgs c;
      c.base.send = input;
      c.base.recv = recv.data();
      c.base.count = count;
      c.base.type = type;
      c.base.op = sqzAvg;
      c.base.deadline = Deadline::fromTimeout();
      c.codec = p.spec.codec;
      c.residual = residual.data();
      c.ownerResidual = ownerResidual.data();
      c.ownerResidualCount = ownerResidual.size();
      c.seed = 1;
      c.step = static_cast<uint64_t>(rep);
      c.counters = &counters;
      // Start together (as after the agreement round), after idle links.
      slowestRank(t, 0.0, o, &slot);
      if (rep >= firstTimed && o.planIdleSeconds > 0)
        std::this_thread::sleep_for(std::chrono::duration<double>(o.planIdleSeconds));
      c.base.seq = seq++;
      const double t0 = now();
      run(flat, c);
      if (rep >= firstTimed) times.push_back(now() - t0);
    }
    out[planName(p.spec)] = slowestRank(t, median(times), o, &slot);
    if (slowestRank(t, now() - start - drainSeconds, o, &slot) > o.planTotalSeconds) break;
  }
  return out;
}

}  // namespace sqz
