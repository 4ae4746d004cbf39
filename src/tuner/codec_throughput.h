// How fast each codec level runs on each device, in bytes of fp32 input per
// second (the unit of perf/results/codec_cpu.md, so rows compare with
// memcpy): encode with error feedback, decode+accumulate, and the one
// statistics pass. The cost model turns element counts into seconds here.
#pragma once

#include <map>
#include <string>

#include "kernels/codec_params.h"

namespace sqz {

enum class Device { Cpu = 0, Gpu = 1 };
const char* deviceName(Device d);  // "cpu", "gpu"
bool parseDevice(const std::string& name, Device* out);

struct CodecRates {
  double encode = 0;  // encode + error feedback, input bytes/s
  double decode = 0;  // decode + accumulate into fp32, input-equivalent bytes/s
  double stats = 0;   // statistics pass, input bytes/s
};

class CodecThroughput {
 public:
  // Keys are codec names (codecName) or a family: "q4" covers every q4
  // variant, "topk" and "randk" every ratio.
  void set(Device d, const std::string& key, const CodecRates& r);
  const std::map<std::string, CodecRates>& rates(Device d) const { return table_[static_cast<int>(d)]; }

  // The rates for p: its exact name, else its family, else the built-in
  // default for the device (defaultThroughput()).
  CodecRates lookup(Device d, const CodecParams& p) const;

  // Seconds to encode / decode+accumulate / take statistics of `elements`
  // fp32 values. "none" encodes for free (nothing to transform).
  double encodeSeconds(Device d, const CodecParams& p, double elements) const;
  double decodeSeconds(Device d, const CodecParams& p, double elements) const;
  double statsSeconds(Device d, double elements) const;

 private:
  std::map<std::string, CodecRates> table_[2];
};

// The family key of a codec: "q4" for "q4:block=512:rn", "topk" for any
// top-K, "randk" for any random-K, "sign" for any plain sign and "sign:rot"
// for any rotated one (whatever its block), else its name.
std::string codecFamily(const CodecParams& p);

// Documented defaults. CPU: measured by perf/codec/sqz_codec_bench on this
// project's 2-vCPU EPYC VM (perf/results/codec_cpu.md), one core. GPU:
// estimates from H100 HBM3 bandwidth (3.35 TB/s) and the bytes each fused
// kernel touches (not measured: no GPU was available when they were set).
const CodecThroughput& defaultThroughput();

}  // namespace sqz
