#include "gpu/gpu_check.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "common/dtype.h"
#include "gpu/spin_kernel.h"
#include "harness/lossy_check.h"
#include "harness/reference.h"

namespace sqz::test {
namespace {

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

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
  const bool lossyType = type == sqzFloat32 || type == sqzFloat16 || type == sqzBfloat16;
  if (!lossyType || (op != sqzSum && op != sqzAvg)) return checkReduction(inputs, result, type, op, count);
  if (!info.exact) {
    // The host tests' check of the codec and plan that ran (the device runs
    // "gather": one encoding per rank of its whole buffer; or "randk").
    Contributions y(n, std::vector<float>(count));
    std::vector<float> out(count);
    for (size_t r = 0; r < n; ++r)
      for (size_t i = 0; i < count; ++i) y[r][i] = static_cast<float>(elementAsDouble(inputs[r].data(), type, i));
    for (size_t i = 0; i < count; ++i) out[i] = static_cast<float>(elementAsDouble(result, type, i));
    return checkLossy(y, out, LossyCall::of(info, type, op));
  }
  // Exact: n terms accumulated in fp32, and the output type's rounding (a
  // 16-bit exact ring, NCCL's, may round once per hop).
  const double u32 = unitRoundoff(sqzFloat32), uOut = unitRoundoff(type), dn = static_cast<double>(n);
  const double scale = op == sqzAvg ? 1.0 / dn : 1.0;
  for (size_t i = 0; i < count; ++i) {
    double ref = 0, sumAbs = 0;
    for (size_t r = 0; r < n; ++r) {
      const double x = elementAsDouble(inputs[r].data(), type, i);
      ref += x;
      sumAbs += std::fabs(x);
    }
    const double got = elementAsDouble(result, type, i);
    double bound = (2.0 * dn * u32 * sumAbs + (uOut > u32 ? (dn + 1) * uOut * sumAbs : 0)) * scale + 1e-30;
    if (op == sqzAvg) bound += (u32 + uOut) * std::fabs(ref * scale);
    if (!(std::fabs(got - ref * scale) <= bound))
      return describe(i, got, ref * scale, bound, "none", type, op, n, "exact");
  }
  return "";
}

}  // namespace sqz::test
