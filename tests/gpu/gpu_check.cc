#include "gpu/gpu_check.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "common/dtype.h"
#include "gpu/spin_kernel.h"
#include "harness/reference.h"

namespace sqz::test {
namespace {

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The fraction R of "topk:R" / "randk:R".
double ratioOf(const std::string& codec) { return std::atof(codec.substr(codec.find(':') + 1).c_str()); }

std::string describe(size_t i, double got, double ref, double bound, const std::string& codec, sqzDataType_t type,
                     sqzRedOp_t op, size_t n, const char* what) {
  std::ostringstream s;
  s.precision(10);
  s << "element " << i << ": got " << got << ", expected " << ref << " +- " << bound << " (" << what << ", codec "
    << codec << ", " << dataTypeName(type) << " " << redOpName(op) << ", " << n << " ranks)";
  return s.str();
}

}  // namespace

bool cudaDevicePresent(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
    return false;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount reports 0 devices";
  return n > 0;
}

void preferEagerModuleLoading() { setenv("CUDA_MODULE_LOADING", "EAGER", 0); }

cudaError_t loadTestKernels() { return loadSpinKernel(); }

DeviceBuffer::DeviceBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
  cudaError_t e = cudaMallocAsync(&ptr_, std::max<size_t>(bytes, 1), stream_);
  if (e != cudaSuccess) throw std::runtime_error(std::string("cudaMallocAsync: ") + cudaGetErrorString(e));
}

DeviceBuffer::~DeviceBuffer() { cudaFreeAsync(ptr_, stream_); }

void DeviceBuffer::upload(const void* host, size_t bytes, cudaStream_t stream) {
  cudaError_t e = cudaMemcpyAsync(ptr_, host, bytes, cudaMemcpyHostToDevice, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) throw std::runtime_error(std::string("upload: ") + cudaGetErrorString(e));
}

void DeviceBuffer::download(void* host, size_t bytes, cudaStream_t stream) const {
  cudaError_t e = cudaMemcpyAsync(host, ptr_, bytes, cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) throw std::runtime_error(std::string("download: ") + cudaGetErrorString(e));
}

const std::vector<std::string>& allSpecs() {
  static const std::vector<std::string> specs{"none", "bf16",      "fp16",       "q8",  "q4",
                                              "q2",   "q1",        "topk:0.05", "randk:0.05", "auto"};
  return specs;
}

std::string checkDevicePlan(const sqzCallInfo& info) {
  std::ostringstream s;
  const std::string codec = info.codec, algorithm = info.algorithm, plan = info.plan;
  std::string want = info.exact ? "ring" : startsWith(codec, "randk") ? "randk" : "gather";
  if (algorithm != want) s << "algorithm " << algorithm << ", expected " << want << "; ";
  if (!info.exact && plan != "@" + want + ":" + codec) s << "plan " << plan << ", expected @" << want << ":" << codec << "; ";
  if (info.encodeSeconds != 0 || info.transferSeconds != 0 || info.decodeSeconds != 0 || info.totalSeconds != 0)
    s << "seconds fields not 0 after a device call; ";
  return s.str();
}

std::string checkDeviceResult(const std::vector<std::vector<unsigned char>>& inputs, const void* result,
                              sqzDataType_t type, sqzRedOp_t op, size_t count, const sqzCallInfo& info) {
  const size_t n = inputs.size();
  if (!isFloatType(type) || (op != sqzSum && op != sqzAvg)) return checkReduction(inputs, result, type, op, count);
  const std::string codec = info.exact ? "none" : info.codec;
  const double u32 = unitRoundoff(sqzFloat32), uOut = unitRoundoff(type), dn = static_cast<double>(n);
  const bool avg = op == sqzAvg;
  // Largest |x| of each rank's whole buffer: bounds every block's range.
  std::vector<double> maxAbs(n, 0);
  for (size_t r = 0; r < n; ++r)
    for (size_t i = 0; i < count; ++i) maxAbs[r] = std::max(maxAbs[r], std::fabs(elementAsDouble(inputs[r].data(), type, i)));
  // The codec name as codecName() writes it: a base ("q4", "topk:0.05")
  // and options (":rn", ":block=N", ":bf16", ":int8", ":rescale").
  const bool topk = startsWith(codec, "topk:"), randk = startsWith(codec, "randk:");
  const size_t baseEnd = codec.find(':', topk || randk ? codec.find(':') + 1 : 0);
  const std::string base = codec.substr(0, baseEnd);
  auto hasOption = [&](const char* o) { return codec.find(std::string(":") + o) != std::string::npos; };
  int bits = 0;
  if (base == "q8") bits = 8;
  if (base == "q4") bits = 4;
  if (base == "q2") bits = 2;
  if (base == "q1") bits = 1;
  const bool cast = base == "bf16" || base == "fp16", exact = base == "none";
  if (!bits && !cast && !topk && !randk && !exact) return "unknown codec in sqzGetCallInfo: " + codec;
  // Sparse values stored in 8 bits: one step of each rank's range.
  const int valueBits = hasOption("int8") ? 8 : 0;
  const bool rescaled = hasOption("rescale");
  const double uCast = base == "bf16" ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  double quantStep = 0;  // sum over ranks of one quantization step
  const int stepBits = bits ? bits : valueBits;
  for (size_t r = 0; stepBits && r < n; ++r) quantStep += 2.0 * maxAbs[r] / ((1 << stepBits) - 1);
  size_t nonzero = 0;
  std::vector<double> x(n);
  for (size_t i = 0; i < count; ++i) {
    double ref = 0, sumAbs = 0;
    for (size_t r = 0; r < n; ++r) {
      x[r] = elementAsDouble(inputs[r].data(), type, i);
      ref += x[r];
      sumAbs += std::fabs(x[r]);
    }
    double got = elementAsDouble(result, type, i);
    if (!std::isfinite(got)) return describe(i, got, ref, 0, codec, type, op, n, "not finite");
    // Accumulation of n terms in fp32, and the output type's rounding (a
    // 16-bit exact ring may round once per hop).
    double accum = 2.0 * dn * u32 * sumAbs + (uOut > u32 ? (dn + 1) * uOut * sumAbs : 0) + 1e-30;
    double scale = avg ? 1.0 / dn : 1.0;
    nonzero += got != 0;
    if (topk) {
      // Each rank contributes its own value or nothing (values as stored:
      // fp32, or bf16 / int8 options): the result is one of the 2^n sub-sums.
      double tol = (accum + (hasOption("bf16") ? std::ldexp(1.0, -7) * sumAbs : 0) + 2.0 * quantStep) * scale;
      bool found = false;
      for (size_t mask = 0; mask < (size_t{1} << n) && !found; ++mask) {
        double s = 0;
        for (size_t r = 0; r < n; ++r)
          if (mask >> r & 1) s += x[r];
        found = std::fabs(got - s * scale) <= tol;
      }
      if (!found) return describe(i, got, ref * scale, tol, codec, type, op, n, "no sub-sum of the inputs");
      continue;
    }
    if (randk) {
      // Every rank keeps the same indices: exact there (up to the values'
      // storage), zero elsewhere; rescaled values only count.
      if (got == 0 || rescaled) continue;
      double tol = (accum + (hasOption("bf16") ? std::ldexp(1.0, -7) * sumAbs : 0) + 2.0 * quantStep) * scale;
      if (std::fabs(got - ref * scale) > tol) return describe(i, got, ref * scale, tol, codec, type, op, n, "randk index");
      continue;
    }
    // One encoding per rank (gather; fresh error feedback): a cast rounds
    // each value once, stochastic b-bit rounding moves it by less than one
    // step of its block. Twice that, for scales stored in low precision.
    // A cast rounds within one ulp (2u relative), also stochastically.
    double bound = accum;
    if (cast) bound += 4.0 * uCast * sumAbs;
    if (bits) bound += 2.0 * quantStep;
    bound *= scale;
    if (avg) bound += (u32 + uOut) * std::fabs(ref * scale);
    if (!(std::fabs(got - ref * scale) <= bound)) return describe(i, got, ref * scale, bound, codec, type, op, n, "bound");
  }
  if (topk || randk) {
    const size_t k = static_cast<size_t>(std::ceil(ratioOf(codec) * static_cast<double>(count)));
    const size_t most = topk ? n * (k + 1) : k + 1;
    if (nonzero > most) {
      std::ostringstream s;
      s << codec << ": " << nonzero << " nonzero elements of " << count << ", at most " << most << " expected";
      return s.str();
    }
    if (count >= 1000 && nonzero == 0) return codec + ": every element is zero";
  }
  return "";
}

}  // namespace sqz::test
