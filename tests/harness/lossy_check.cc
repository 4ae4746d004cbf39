#include "harness/lossy_check.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>

#include "collectives/collective_args.h"
#include "common/error.h"
#include "harness/reference.h"
#include "kernels/codec_math.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/plan_name.h"

namespace sqz::test {
namespace {

// How many standard deviations a self-normalized sum or the squared error's
// spread may reach: ~1e-9 for a Gaussian, far below one false alarm per
// CI run of every test, while a zeroed output of n elements sits at
// ~sqrt(n/3) (18 at n = 1023).
constexpr double kZ = 6.0;
const double kU32 = std::ldexp(1.0, -24);

std::string describe(const char* what, size_t i, double got, double ref, double bound, const std::string& plan) {
  std::ostringstream s;
  s.precision(9);
  s << what << ": element " << i << ": got " << got << ", expected " << ref << " +- " << bound << " (" << plan << ")";
  return s.str();
}

// The call as the checks see it: the contributions to the lossy stage (ranks,
// or node sums for a hierarchical plan), the scale of the result (1/n for
// avg), and the per-element tolerance every path shares.
struct Stage {
  const Contributions* c = nullptr;  // m contributors
  size_t m = 0, count = 0;
  int nranks = 0;
  std::string algorithm, plan;
  CodecParams codec;
  double scale = 1, uOut = 0;
  double absOut = 0;  // half the output type's subnormal spacing (fp16: 2^-25)
  bool avg = false;
  std::vector<double> extra;  // hierarchical: intra-node roundings (noise-like), per element
  double extraAt(size_t i) const { return extra.empty() ? 0.0 : extra[i]; }
  double sum(size_t i) const {
    double s = 0;
    for (size_t r = 0; r < m; ++r) s += (*c)[r][i];
    return s;
  }
  double sumAbs(size_t i) const {
    double s = 0;
    for (size_t r = 0; r < m; ++r) s += std::fabs((*c)[r][i]);
    return s;
  }
  // Roundings after the codec: fp32 sums of m terms, the output type, avg's division.
  double after(size_t i, double ref) const {
    double t = scale * ((2.0 * m + 2) * kU32 * sumAbs(i) + extraAt(i));
    if (uOut > kU32) t += uOut * std::fabs(ref) * 1.0000001 + absOut;
    if (avg) t += kU32 * std::fabs(ref);
    return t + 1e-300;
  }
};

std::string checkExact(const Stage& st, const std::vector<float>& out) {
  for (size_t i = 0; i < st.count; ++i) {
    const double ref = st.scale * st.sum(i), bound = st.after(i, ref);
    if (!(std::fabs(out[i] - ref) <= bound)) return describe("exact", i, out[i], ref, bound, st.plan);
  }
  return "";
}

// bf16 / fp16 (round to nearest): one rounding of |x| <= sum|c| per
// encoding on the element's path.
std::string checkCast(const Stage& st, const std::vector<float>& out) {
  const double u = st.codec.kind == CodecKind::Bf16 ? unitRoundoff(sqzBfloat16) : unitRoundoff(sqzFloat16);
  const double m = static_cast<double>(st.m);
  double encodings;
  if (st.algorithm == "gather") encodings = 1;
  else if (st.algorithm == "qa2a") encodings = 2;
  else if (st.algorithm == "qring") encodings = m;
  else return "no cast bound for algorithm '" + st.algorithm + "'";
  const double k = (encodings + 0.01) * (1 + 2 * m * u);
  for (size_t i = 0; i < st.count; ++i) {
    const double ref = st.scale * st.sum(i), bound = st.scale * k * u * st.sumAbs(i) + st.after(i, ref);
    if (!(std::fabs(out[i] - ref) <= bound)) return describe("cast", i, out[i], ref, bound, st.plan);
  }
  return "";
}

// The sums behind the checks of an unbiased error (stochastic rounding, the
// rotated sign): its energy, its correlation with the exact sum S and its
// mean, each with the tolerance of the fp32 arithmetic (det per element).
struct ErrorSums {
  double mse = 0, detSq = 0, corr = 0, corrNorm = 0, corrTol = 0, mean = 0, meanTol = 0;
  void add(double e, double S, double det) {
    mse += e * e;
    detSq += det * det;
    corr += e * S;
    corrNorm += e * e * S * S;
    corrTol += det * std::fabs(S);
    mean += e;
    meanTol += det;
  }
  // A scaled (zeroed, halved, negated) or misplaced result correlates with
  // S; an offset one does not have mean zero.
  void reportBias(std::ostringstream& s, const std::string& plan) const {
    if (!(std::fabs(corr) <= kZ * std::sqrt(corrNorm) + corrTol))
      s << "the error correlates with the exact sum: sum e*S = " << corr << ", t = " << corr / std::sqrt(corrNorm)
        << " (|t| <= " << kZ << ", " << plan << "); ";
    if (!(std::fabs(mean) <= kZ * std::sqrt(mse) + meanTol))
      s << "the error has a nonzero mean: sum e = " << mean << ", t = " << mean / std::sqrt(mse) << " (|t| <= " << kZ
        << ", " << plan << "); ";
  }
};

// Blockwise b-bit quantization. Each encoding of a block of range R moves
// an element by less than delta = R / (2^b - 1) (stochastic; delta/2 when
// rounding to nearest), with variance at most delta^2/4. The blocks are the
// algorithm's: each segment (an even split: one per contributor for qa2a
// and qring, the whole buffer for gather) is encoded in blocks from its
// start. What is encoded: for qa2a, each contributor's own values (not the
// segment owner's), then the owner's sum; for qring, the partial sums along
// the ring (segment t starts at contributor t), then the whole sum; for
// gather, each contributor's values. A re-encoded sum's range is the exact
// sum's plus twice the noise already in it.
struct QuantSegment {
  size_t offset, length, first;  // first: qa2a's owner, qring's first contributor
};

std::vector<QuantSegment> quantSegments(const Stage& st, size_t shards) {
  std::vector<QuantSegment> out;
  if (st.algorithm == "gather") return {{0, st.count, 0}};
  const EvenSplit bigs{st.count, shards};
  for (size_t s = 0; s < shards; ++s) {
    const EvenSplit inner{bigs.length(s), st.m};
    for (size_t j = 0; j < st.m; ++j) out.push_back({bigs.offset(s) + inner.offset(j), inner.length(j), j});
  }
  return out;
}

std::string checkQuant(const Stage& st, const std::vector<float>& out, size_t shards) {
  const size_t m = st.m, B = st.codec.blockSize;
  const double maxc = static_cast<double>(maxCode(st.codec.bits));
  const bool sr = st.codec.stochastic;
  const double f = sr ? 1.0 : 0.5;
  const bool gather = st.algorithm == "gather", a2a = st.algorithm == "qa2a", ring = st.algorithm == "qring";
  if (!gather && !a2a && !ring) return "no quantizer bound for algorithm '" + st.algorithm + "'";
  const Contributions& c = *st.c;
  // Ranges of one block: [r] contributor r (gather, qa2a) or the partial sum
  // of r + 1 contributors along the ring (qring); [m] the whole sum.
  std::vector<double> lo(m + 1), hi(m + 1);
  std::string worst;  // the first element outside its worst case
  double varSum = 0, spread = 0;
  ErrorSums es;
  for (const QuantSegment& seg : quantSegments(st, shards)) {
    for (size_t b0 = seg.offset; b0 < seg.offset + seg.length; b0 += B) {
      const size_t b1 = std::min(b0 + B, seg.offset + seg.length);
      std::fill(lo.begin(), lo.end(), INFINITY);
      std::fill(hi.begin(), hi.end(), -INFINITY);
      for (size_t i = b0; i < b1; ++i) {
        double partial = 0;
        for (size_t k = 0; k < m; ++k) {
          const double x = ring ? (partial += c[(seg.first + k) % m][i]) : c[k][i];
          lo[k] = std::min(lo[k], x), hi[k] = std::max(hi[k], x);
        }
        const double S = st.sum(i);
        lo[m] = std::min(lo[m], S), hi[m] = std::max(hi[m], S);
      }
      double w = 0, v = 0, ranges = 0;  // worst case and variance of an element's error
      auto encode = [&](double range) {
        const double delta = (range + 2 * w) / maxc;
        w += f * delta;
        v += delta * delta / 4;
        ranges += range + 2 * w;
      };
      if (gather || a2a) {
        double raw = 0;
        for (size_t r = 0; r < m; ++r)
          if (gather || r != seg.first) {
            const double delta = (hi[r] - lo[r]) / maxc;
            raw += f * delta;
            v += delta * delta / 4;
            ranges += hi[r] - lo[r];
          }
        w = raw;
        if (a2a) encode(hi[m] - lo[m]);
      } else {
        for (size_t k = 0; k + 1 < m; ++k) encode(hi[k] - lo[k]);
        encode(hi[m] - lo[m]);
      }
      if (!sr) v = w * w;
      for (size_t i = b0; i < b1; ++i) {
        const double S = st.sum(i), ref = st.scale * S;
        // fp32 arithmetic of encode and decode (lo + code * delta) on each path.
        const double det = st.scale * 4.0 * (m + 1) * kU32 * ranges + st.after(i, ref);
        const double e = out[i] - ref, bound = st.scale * w + det;
        if (!(std::fabs(e) <= bound) && worst.empty())
          worst = describe("quantizer worst case", i, out[i], ref, bound, st.plan);
        es.add(e, S, det);
        varSum += st.scale * st.scale * v;
        spread += st.scale * st.scale * w * w * st.scale * st.scale * v;
      }
    }
  }
  const size_t n = st.count;
  // Every failing part is reported (a test may look for one).
  std::ostringstream s;
  s.precision(4);
  if (!worst.empty()) s << worst << "; ";
  // E[sum e^2] <= sum v, and its spread is at most sqrt(sum w^2 v) (e^2 <= w^2).
  const double noise = std::sqrt(varSum + kZ * std::sqrt(spread));
  const double mseBound = (noise + std::sqrt(es.detSq)) * (noise + std::sqrt(es.detSq));
  if (!(es.mse <= mseBound))
    s << "squared error " << es.mse << " over the bound " << mseBound << " from the codec's variance (rms "
      << std::sqrt(es.mse / n) << " vs " << std::sqrt(mseBound / n) << ", " << st.plan << "); ";
  // Unbiased encodings: the error is uncorrelated with the exact sum and has
  // mean zero. (Rounding to nearest is biased.)
  if (sr) es.reportBias(s, st.plan);
  std::string why = s.str();
  if (!why.empty()) why.resize(why.size() - 2);
  return why;
}

// sign:rot (gather, qa2a). Each encoding's error in a block is orthogonal
// to its input y with squared norm ||y||^2 (1 / delta - 1), delta measured
// after the rotation, where a block's values are close to Gaussian (delta
// near 2/pi, error near 0.57 ||y||^2). The checks: the squared error within
// ||y||^2 per full block and encoding (delta >= 1/2, which a rotated block
// of 32 or more values misses only with negligible probability) and (len -
// 1) ||y||^2 in a buffer's last, partial block (delta >= 1/len always); and,
// since the random rotation makes each error a random direction, the error
// uncorrelated with the exact sum and with mean zero (as stochastic
// rounding's): a zeroed, halved, negated, offset or partly dropped result is
// not. The plain sign's error is deterministic and shared by every rank
// (src/tuner/README.md section 6): no statistical check holds for it, and
// tests compare it bitwise with each rank's own encoding instead.
std::string checkRotatedSign(const Stage& st, const std::vector<float>& out, size_t shards) {
  const bool gather = st.algorithm == "gather", a2a = st.algorithm == "qa2a";
  if (!gather && !a2a) return "no rotated-sign bound for algorithm '" + st.algorithm + "'";
  const Contributions& c = *st.c;
  const size_t B = st.codec.blockSize, m = st.m;
  double budget = 0;
  ErrorSums es;
  for (const QuantSegment& seg : quantSegments(st, shards)) {
    for (size_t b0 = seg.offset; b0 < seg.offset + seg.length; b0 += B) {
      const size_t b1 = std::min(b0 + B, seg.offset + seg.length), len = b1 - b0;
      const double k = len == B ? 1.0 : static_cast<double>(len - 1);
      double first = 0, sumSq = 0;
      for (size_t r = 0; r < m; ++r) {
        if (a2a && r == seg.first) continue;  // the owner adds its own share exactly
        for (size_t i = b0; i < b1; ++i) first += static_cast<double>(c[r][i]) * c[r][i];
      }
      for (size_t i = b0; i < b1; ++i) sumSq += st.sum(i) * st.sum(i);
      first *= k;
      double v = first;
      if (a2a) {  // the owner encodes the sum plus the first stage's error
        const double in = std::sqrt(sumSq) + std::sqrt(first);
        v += k * in * in;
      }
      budget += st.scale * st.scale * v;
      for (size_t i = b0; i < b1; ++i) {
        const double S = st.sum(i), ref = st.scale * S;
        const double det = st.after(i, ref) + st.scale * 64 * kU32 * std::sqrt(v / static_cast<double>(len));
        es.add(out[i] - ref, S, det);
      }
    }
  }
  std::ostringstream s;
  s.precision(4);
  const double bound = (std::sqrt(budget) + std::sqrt(es.detSq)) * (std::sqrt(budget) + std::sqrt(es.detSq));
  if (!(es.mse <= bound))
    s << "squared error " << es.mse << " over the rotated sign's bound " << bound << " (" << st.plan << "); ";
  es.reportBias(s, st.plan);
  std::string why = s.str();
  if (!why.empty()) why.resize(why.size() - 2);
  return why;
}

// Tolerance of one stored top-K / random-K value of contributor r (after
// any rescale by `c`): bf16 rounds it, int8 moves it by half a step of its
// payload's scale (max |value| / 127).
struct ValueTolerance {
  ValueFormat format;
  std::vector<double> int8HalfStep;  // per contributor
  double of(double v, size_t r) const {
    if (format == ValueFormat::Bf16) return unitRoundoff(sqzBfloat16) * std::fabs(v);
    if (format == ValueFormat::Int8) return int8HalfStep[r];
    return 0;
  }
};

// True when got is scale * (sum of v[r] over a set holding `required`),
// within tol. Sets are walked in Gray-code order: one add per set.
bool isSubSum(double got, const std::vector<double>& v, uint32_t required, double scale, double tol) {
  const size_t m = v.size();
  double base = 0;
  std::vector<size_t> free;
  for (size_t r = 0; r < m; ++r) {
    if (required >> r & 1) base += v[r];
    else free.push_back(r);
  }
  if (std::fabs(got - scale * base) <= tol) return true;
  std::vector<bool> in(free.size(), false);
  double sum = base;
  for (uint64_t k = 1; k < (uint64_t{1} << free.size()); ++k) {
    const size_t bit = static_cast<size_t>(__builtin_ctzll(k));
    in[bit] = !in[bit];
    sum += in[bit] ? v[free[bit]] : -v[free[bit]];
    if (std::fabs(got - scale * sum) <= tol) return true;
  }
  return false;
}

// Top-K: every rank sends its K largest |c| (per chunk of the algorithm's
// split, at most nranks chunks) as stored values; the result at each
// element is the sum of those sent there. So: every element is a sub-sum
// of the contributions, the sub-sum holds every contributor for which the
// element is among its m largest values (m = K of the smallest chunk: in
// the top K of whatever chunk holds it), and at least K elements are
// nonzero.
std::string checkTopK(const Stage& st, const std::vector<float>& out) {
  const size_t m = st.m, n = st.count;
  if (m > 16) return "top-K check: more than 16 contributors";
  CodecParams smallest = st.codec;
  const size_t need = selectedCount(smallest, std::max<size_t>(1, n / static_cast<size_t>(st.nranks)));
  std::vector<uint16_t> required(n, 0);
  ValueTolerance vt{st.codec.values, std::vector<double>(m, 0)};
  size_t fewestNonzero = n;
  for (size_t r = 0; r < m; ++r) {
    const std::vector<float>& x = (*st.c)[r];
    std::vector<float> mag(n);
    size_t nonzero = 0;
    double maxAbs = 0;
    for (size_t i = 0; i < n; ++i) {
      mag[i] = std::fabs(x[i]);
      nonzero += x[i] != 0;
      maxAbs = std::max(maxAbs, static_cast<double>(mag[i]));
    }
    fewestNonzero = std::min(fewestNonzero, nonzero);
    vt.int8HalfStep[r] = maxAbs / 254.0 * 1.00001;
    // Strictly above the (need+1)-th largest magnitude: in the top `need` whatever the ties.
    float above = -1.0f;
    if (need < n) {
      std::nth_element(mag.begin(), mag.begin() + static_cast<std::ptrdiff_t>(need), mag.end(), std::greater<float>());
      above = mag[need];
    }
    for (size_t i = 0; i < n; ++i)
      if (std::fabs(x[i]) > above) required[i] |= static_cast<uint16_t>(1u << r);
  }
  std::vector<double> v(m);
  size_t nonzero = 0;
  for (size_t i = 0; i < n; ++i) {
    double tolValues = 0;
    for (size_t r = 0; r < m; ++r) {
      v[r] = (*st.c)[r][i];
      tolValues += vt.of(v[r], r);
    }
    const double got = out[i];
    nonzero += got != 0;
    const double ref = st.scale * st.sum(i);
    const double tol = st.scale * tolValues + st.after(i, std::max(std::fabs(ref), std::fabs(got)));
    if (!isSubSum(got, v, required[i], st.scale, tol)) {
      std::ostringstream s;
      s << "top-K: element " << i << ": got " << got << ", not a sum of the contributions";
      if (required[i]) s << " that holds the ranks whose largest values are there (mask " << required[i] << ")";
      s << "; exact sum " << ref << " (" << st.plan << ")";
      return s.str();
    }
  }
  const size_t k = std::min(selectedCount(st.codec, n), fewestNonzero);
  const size_t most = m * (selectedCount(st.codec, n) + static_cast<size_t>(st.nranks));
  if (nonzero < k || nonzero > most) {
    std::ostringstream s;
    s << "top-K: " << nonzero << " nonzero elements of " << n << ", expected " << k << " to " << most << " ("
      << st.plan << ")";
    return s.str();
  }
  return "";
}

// Random-K: every rank keeps the same index in each stratum of each
// segment (the whole buffer; for a hierarchical plan, each node shard), so
// the result holds exactly one nonzero per stratum, the exact sum there
// (times the stratum size when rescaled), and zeros elsewhere.
std::string checkRandK(const Stage& st, const std::vector<float>& out, size_t segments) {
  const size_t m = st.m, n = st.count;
  const EvenSplit split{n, segments};
  ValueTolerance vt{st.codec.values, std::vector<double>(m, 0)};
  for (size_t seg = 0; seg < segments; ++seg) {
    const size_t off = split.offset(seg), len = split.length(seg), k = selectedCount(st.codec, len);
    for (size_t j = 0; j < k; ++j) {
      const size_t b = off + randkStratumBegin(j, len, k), e = off + randkStratumBegin(j + 1, len, k);
      const double c = st.codec.rescale ? static_cast<double>(e - b) : 1.0;
      size_t kept = 0, at = 0;
      bool zeroPossible = false;
      for (size_t i = b; i < e; ++i) {
        double tolValues = 0;
        for (size_t r = 0; r < m; ++r) tolValues += vt.of(c * (*st.c)[r][i], r);
        const double ref = st.scale * c * st.sum(i);
        const double tol = st.scale * (tolValues + c * (2.0 * m + 2) * kU32 * st.sumAbs(i)) + st.after(i, ref);
        if (std::fabs(ref) <= tol) zeroPossible = true;
        if (out[i] == 0) continue;
        ++kept;
        at = i;
        if (!(std::fabs(out[i] - ref) <= tol)) return describe("random-K kept index", i, out[i], ref, tol, st.plan);
      }
      if (kept > 1 || (kept == 0 && !zeroPossible)) {
        std::ostringstream s;
        s << "random-K: " << kept << " nonzero elements in stratum [" << b << ", " << e << ") (one expected";
        if (kept > 1) s << ", the last at " << at;
        s << ", " << st.plan << ")";
        return s.str();
      }
    }
  }
  return "";
}

}  // namespace

LossyCall LossyCall::of(const sqzCallInfo& info, sqzDataType_t type, sqzRedOp_t op) {
  LossyCall c;
  c.plan = info.plan;
  c.codec = info.codec;
  c.exact = info.exact != 0;
  c.type = type;
  c.op = op;
  return c;
}

std::string checkLossy(const Contributions& y, const std::vector<float>& out, const LossyCall& call) {
  const size_t nranks = y.size(), n = out.size();
  if (nranks == 0) return "no contributions";
  for (const auto& c : y)
    if (c.size() != n) return "a contribution's length differs from the output's";
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(out[i])) return describe("not finite", i, out[i], 0, 0, call.plan);
  if (call.op != sqzSum && call.op != sqzAvg) return "lossy checks take sum or avg";
  PlanSpec plan;
  try {
    if (call.plan.empty() || call.plan[0] != '@') return "plan '" + call.plan + "' does not start with '@'";
    plan = parsePlanName(call.plan.substr(1));
    if (!plan.hierarchical && codecName(plan.codec) != call.codec && !(call.exact && call.codec == "none"))
      return "plan '" + call.plan + "' and codec '" + call.codec + "' disagree";
  } catch (const Error& e) {
    return std::string("cannot read the call: ") + e.what();
  }
  Stage st;
  st.count = n;
  st.nranks = static_cast<int>(nranks);
  st.plan = call.plan;
  st.algorithm = plan.algorithm;
  st.codec = plan.codec;
  st.avg = call.op == sqzAvg;
  st.scale = st.avg ? 1.0 / static_cast<double>(nranks) : 1.0;
  st.uOut = unitRoundoff(call.type);
  if (call.type == sqzFloat16) st.absOut = std::ldexp(1.0, -25);
  st.c = &y;
  st.m = nranks;
  Contributions nodeSums;
  size_t segments = 1;
  if (plan.hierarchical) {
    // The lossy stage sees one contribution per node: its ranks' sum (fp32,
    // and with a cast intra-node codec, each rank's shard rounded once and
    // the result rounded once more for the allgather).
    if (call.nodeOf.size() != nranks) return "hierarchical plan: nodeOf must give every rank's node";
    const int nodes = *std::max_element(call.nodeOf.begin(), call.nodeOf.end()) + 1;
    nodeSums.assign(static_cast<size_t>(nodes), std::vector<float>(n, 0.0f));
    std::vector<std::vector<double>> sums(static_cast<size_t>(nodes), std::vector<double>(n, 0.0));
    for (size_t r = 0; r < nranks; ++r)
      for (size_t i = 0; i < n; ++i) sums[call.nodeOf[r]][i] += y[r][i];
    for (int k = 0; k < nodes; ++k)
      for (size_t i = 0; i < n; ++i) nodeSums[k][i] = static_cast<float>(sums[k][i]);
    const double uIntra = plan.intraCodec.kind == CodecKind::Bf16   ? unitRoundoff(sqzBfloat16)
                          : plan.intraCodec.kind == CodecKind::Fp16 ? unitRoundoff(sqzFloat16)
                                                                    : 0.0;
    const double perNode = static_cast<double>(nranks) / nodes;
    st.extra.assign(n, 0.0);
    for (size_t i = 0; i < n; ++i) {
      double sumAbs = 0;
      for (size_t r = 0; r < nranks; ++r) sumAbs += std::fabs(y[r][i]);
      st.extra[i] = ((perNode + 2) * kU32 + 2.05 * uIntra) * sumAbs;
    }
    st.c = &nodeSums;
    st.m = static_cast<size_t>(nodes);
    segments = static_cast<size_t>(perNode);
  }
  if (call.exact || plan.codec.kind == CodecKind::None) return checkExact(st, out);
  switch (plan.codec.kind) {
    case CodecKind::Bf16:
    case CodecKind::Fp16: return checkCast(st, out);
    case CodecKind::Quant: return checkQuant(st, out, segments);
    case CodecKind::TopK: return checkTopK(st, out);
    case CodecKind::RandK: return checkRandK(st, out, segments);
    case CodecKind::Sign:
      if (plan.codec.rotate) return checkRotatedSign(st, out, segments);
      return "no statistical check for the plain sign (deterministic error; compare it with each rank's encoding)";
    default: return "unknown codec in '" + call.plan + "'";
  }
}

const std::vector<Breakage>& allBreakages() {
  static const std::vector<Breakage> all{Breakage::Zeroed, Breakage::Halved, Breakage::Shifted, Breakage::Offset,
                                         Breakage::DroppedChunk};
  return all;
}

const char* breakageName(Breakage b) {
  switch (b) {
    case Breakage::Zeroed: return "zeroed";
    case Breakage::Halved: return "halved";
    case Breakage::Negated: return "negated";
    case Breakage::Shifted: return "shifted by one element";
    case Breakage::Offset: return "offset by its rms";
    case Breakage::DroppedChunk: return "one rank's chunk dropped";
    case Breakage::SkippedLastBlock: return "every chunk's last block skipped";
  }
  return "?";
}

std::vector<float> breakOutput(const std::vector<float>& out, Breakage b, int nranks) {
  std::vector<float> x = out;
  const size_t n = x.size();
  switch (b) {
    case Breakage::Zeroed: std::fill(x.begin(), x.end(), 0.0f); break;
    case Breakage::Halved:
      for (float& v : x) v *= 0.5f;
      break;
    case Breakage::Negated:
      for (float& v : x) v = -v;
      break;
    case Breakage::Shifted:
      if (n > 1) std::rotate(x.begin(), x.end() - 1, x.end());
      break;
    case Breakage::Offset: {
      double sq = 0;
      for (float v : x) sq += static_cast<double>(v) * v;
      const float rms = n ? static_cast<float>(std::sqrt(sq / n)) : 0.0f;
      for (float& v : x) v += rms > 0 ? rms : 1.0f;
      break;
    }
    case Breakage::DroppedChunk: {
      const EvenSplit split{n, static_cast<size_t>(std::max(1, nranks))};
      const size_t j = static_cast<size_t>(nranks / 2);
      std::fill(x.begin() + split.offset(j), x.begin() + split.offset(j + 1), 0.0f);
      break;
    }
    case Breakage::SkippedLastBlock: {
      const EvenSplit split{n, static_cast<size_t>(std::max(1, nranks))};
      for (size_t j = 0; j < static_cast<size_t>(std::max(1, nranks)); ++j) {
        const size_t end = split.offset(j + 1), begin = end - std::min<size_t>(split.length(j), 256);
        std::fill(x.begin() + begin, x.begin() + end, 0.0f);
      }
      break;
    }
  }
  return x;
}

}  // namespace sqz::test
