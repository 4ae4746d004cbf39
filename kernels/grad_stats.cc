// gain() from the statistics (DESIGN.md section 1).
#include "kernels/grad_stats.h"

#include <cmath>
#include <cstring>

namespace sqz {

double statsBinLowerEdge(int bin) {
  if (bin <= 0) return 0.0;
  const int q = bin + (127 + GradStats::kMinExponent) * GradStats::kBinsPerOctave;
  const uint32_t bits = static_cast<uint32_t>(q) << 21;
  return bitsFloat(bits);
}

void clearStats(GradStats* s) { std::memset(s, 0, sizeof *s); }

void addStats(GradStats* into, const GradStats& from) {
  double* a = reinterpret_cast<double*>(into);
  const double* b = reinterpret_cast<const double*>(&from);
  for (size_t i = 0; i < GradStats::kDoubles; ++i) a[i] += b[i];
}

double topkKeptFraction(const GradStats& s, double k) {
  if (s.sumSq <= 0.0) return 1.0;
  double kept = 0.0, left = k;
  for (int b = GradStats::kBins - 1; b >= 0 && left > 0.0; --b) {
    const double c = s.binCount[b];
    if (c <= 0.0) continue;
    if (c <= left) {
      kept += s.binSumSq[b];
      left -= c;
    } else {
      kept += s.binSumSq[b] * (left / c);
      left = 0.0;
    }
  }
  const double f = kept / s.sumSq;
  return f < 1.0 ? f : 1.0;
}

namespace {

// Relative variance of storing values in 16 bits: unit roundoff squared
// bounds the squared relative error of round-to-nearest.
constexpr double kBf16Omega = 1.0 / 65536.0;          // u = 2^-8
constexpr double kFp16Omega = 1.0 / 4194304.0;        // u = 2^-11

// Share of the squared norm lost to fp16's range: flushed below 2^-24,
// overflowing (to inf: nothing survives) at and above 2^16.
double fp16RangeFactor(const GradStats& s) {
  if (s.binCount[GradStats::kBins - 1] > 0.0) return 0.0;
  double lost = 0.0;
  for (int b = 0; b < GradStats::kBins && statsBinLowerEdge(b + 1) <= 0x1p-24; ++b) lost += s.binSumSq[b];
  return 1.0 - lost / s.sumSq;
}

double highestMagnitude(const GradStats& s) {
  for (int b = GradStats::kBins - 1; b >= 0; --b)
    if (s.binCount[b] > 0.0) return b + 1 < GradStats::kBins ? statsBinLowerEdge(b + 1) : 0x1p126;
  return 0.0;
}

// Factor of keeping k values (holding `keptSq`) in format f.
double valueFactor(const GradStats& s, ValueFormat f, double k, double keptSq) {
  switch (f) {
    case ValueFormat::Bf16: return 1.0 / (1.0 + kBf16Omega);
    case ValueFormat::Int8: {
      if (keptSq <= 0.0) return 1.0;
      const double step = highestMagnitude(s) / 127.0;
      return 1.0 / (1.0 + k * step * step / 4.0 / keptSq);
    }
    default: return 1.0;
  }
}

}  // namespace

double gain(const GradStats& s, const CodecParams& p) {
  if (s.nonFinite > 0.0) return 0.0;
  if (p.kind == CodecKind::None || s.sumSq <= 0.0) return 1.0;
  const double n = s.elements;
  switch (p.kind) {
    case CodecKind::Bf16: return 1.0 / (1.0 + kBf16Omega);
    case CodecKind::Fp16: return fp16RangeFactor(s) / (1.0 + kFp16Omega);
    case CodecKind::Quant: {
      // Measured at kStatsBlockSize; a larger block has a wider range, so
      // this is optimistic for blockSize > kStatsBlockSize.
      const double omega = s.quantVar[quantWidthIndex(p.bits)] / s.sumSq;
      return 1.0 / (1.0 + omega);
    }
    case CodecKind::TopK: {
      const double k = std::ceil(p.ratio * n);
      const double f = topkKeptFraction(s, k);
      return f * valueFactor(s, p.values, k, f * s.sumSq);
    }
    case CodecKind::RandK: {
      // Kept fraction in expectation, = 1 / (1 + omega) with omega = n/K - 1
      // for the rescaled (unbiased) variant.
      const double k = std::ceil(p.ratio * n);
      const double f = k < n ? k / n : 1.0;
      return f * valueFactor(s, p.values, k, f * s.sumSq);
    }
    default: return 1.0;
  }
}

}  // namespace sqz
