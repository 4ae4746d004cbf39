#include "src/tuner/codec_throughput.h"

#include "src/codec/codec_spec.h"

namespace sqz {

const char* deviceName(Device d) { return d == Device::Gpu ? "gpu" : "cpu"; }

bool parseDevice(const std::string& name, Device* out) {
  if (name == "cpu") *out = Device::Cpu;
  else if (name == "gpu") *out = Device::Gpu;
  else return false;
  return true;
}

std::string codecFamily(const CodecParams& p) {
  switch (p.kind) {
    case CodecKind::Quant: return "q" + std::to_string(p.bits);
    // The rotation is a transform each way on top of the sign's passes: its
    // own rates, never the plain sign's.
    case CodecKind::Sign: return p.rotate ? "sign:rot" : "sign";
    case CodecKind::TopK: return "topk";
    case CodecKind::RandK: return "randk";
    default: return codecName(p);
  }
}

void CodecThroughput::set(Device d, const std::string& key, const CodecRates& r) {
  table_[static_cast<int>(d)][key] = r;
}

CodecRates CodecThroughput::lookup(Device d, const CodecParams& p) const {
  const auto& t = table_[static_cast<int>(d)];
  auto it = t.find(codecName(p));
  if (it == t.end()) it = t.find(codecFamily(p));
  if (it != t.end()) return it->second;
  if (this != &defaultThroughput()) return defaultThroughput().lookup(d, p);
  return CodecRates{1e9, 1e9, 1e9};  // not reached for the standard levels
}

double CodecThroughput::encodeSeconds(Device d, const CodecParams& p, double elements) const {
  if (p.kind == CodecKind::None || elements <= 0) return 0.0;
  return elements * 4.0 / lookup(d, p).encode;
}

double CodecThroughput::decodeSeconds(Device d, const CodecParams& p, double elements) const {
  if (elements <= 0) return 0.0;
  return elements * 4.0 / lookup(d, p).decode;
}

double CodecThroughput::statsSeconds(Device d, double elements) const {
  if (elements <= 0) return 0.0;
  return elements * 4.0 / lookup(d, CodecParams{}).stats;
}

namespace {

CodecThroughput makeDefaults() {
  CodecThroughput t;
  constexpr double G = 1e9;
  // CPU, from perf/results/codec_cpu.md: encode+EF, decode+acc and stats rates.
  const double st = 3.3 * G;
  t.set(Device::Cpu, "none", {7.96 * G, 19.18 * G, st});
  t.set(Device::Cpu, "bf16", {5.26 * G, 22.08 * G, st});
  t.set(Device::Cpu, "fp16", {1.11 * G, 2.08 * G, st});
  t.set(Device::Cpu, "q8", {2.13 * G, 22.93 * G, st});
  t.set(Device::Cpu, "q4", {2.10 * G, 21.36 * G, st});
  t.set(Device::Cpu, "q2", {2.06 * G, 9.72 * G, st});
  t.set(Device::Cpu, "q1", {1.91 * G, 10.10 * G, st});
  t.set(Device::Cpu, "q8:rn", {3.63 * G, 23.03 * G, st});
  t.set(Device::Cpu, "q4:rn", {3.40 * G, 20.05 * G, st});
  // top-K decode touches only K values, so its rate per element of the
  // buffer is high (perf/results/codec_cpu.md, at ratio 0.01).
  t.set(Device::Cpu, "topk", {0.35 * G, 177 * G, st});
  t.set(Device::Cpu, "randk", {2.82 * G, 4.64 * G, st});
  // The rotated sign: its own rates (a transform each way on top of the
  // sign's passes), measured later than the rows above, on the 2-vCPU Xeon
  // (perf/results/codec_cpu.md, section "sign:rot").
  t.set(Device::Cpu, "sign:rot", {0.32 * G, 0.59 * G, st});
  // GPU estimates (HBM3 3.35 TB/s): encode+EF reads input and residual and
  // writes residual and payload (~12-13 bytes per 4-byte input: ~1 TB/s);
  // decode+acc reads payload and accumulator and writes the accumulator
  // (~8-9 bytes per element: ~1.5 TB/s); stats read input and residual.
  // Top-K encode adds a radix select (two more passes): ~0.4 TB/s.
  const double gst = 1.6e12;
  for (const char* k : {"none", "bf16", "fp16", "q8", "q4", "q2", "q1", "randk"})
    t.set(Device::Gpu, k, {1.0e12, 1.5e12, gst});
  t.set(Device::Gpu, "topk", {0.4e12, 10e12, gst});
  // sign:rot reads input and residual twice (before the rotation and for
  // the residual after the inverse one), ~20 bytes per element: ~0.67 TB/s;
  // decode as the others'.
  t.set(Device::Gpu, "sign:rot", {0.67e12, 1.5e12, gst});
  return t;
}

}  // namespace

const CodecThroughput& defaultThroughput() {
  static const CodecThroughput t = makeDefaults();
  return t;
}

}  // namespace sqz
