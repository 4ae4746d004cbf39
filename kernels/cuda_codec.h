// The codecs on a CUDA device, with the CPU path's semantics and payload
// bytes (kernels/cpu_codec.h). Host-callable; every pointer is device memory
// and every call is asynchronous on `stream` (a cudaStream_t, null for the
// default stream), so this header needs no CUDA headers. Launch errors throw
// sqz::Error(sqzInternalError); without CUDA every call throws sqzInvalidUsage.
// Device payloads must be 16-byte aligned (cudaMalloc gives 256).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/codec_params.h"
#include "kernels/cpu_codec.h"
#include "kernels/grad_stats.h"
#include "kernels/wire_format.h"

namespace sqz {

// True when the build has CUDA and a device is usable (driver present).
bool cudaCodecAvailable();

// Scratch device memory cudaEncode needs for this codec and count (0 for all
// but top-K, random-K and sign:rot with blocks beyond shared memory);
// 256-byte aligned.
size_t cudaEncodeWorkspaceBytes(const CodecParams& p, size_t count);

// Scratch device memory cudaDecode needs (0 for all but sign:rot with blocks
// beyond shared memory, which rotate back in it); 256-byte aligned. One
// workspace of the larger of the two serves an encode and then a decode on
// the same stream.
size_t cudaDecodeWorkspaceBytes(const CodecParams& p, size_t count);

// Statistics of g + e, added into *devStats (device memory, zeroed by the
// caller once). One read pass; a.stats is ignored.
void cudaGradStats(const void* input, sqzDataType_t dtype, const float* residual, size_t count, GradStats* devStats,
                   void* stream);

// The count sketch of the whole of g (statsSketchCpu) added into
// devStats->sketch, then sketchSq and sketchRanks of this rank's statistics
// (devStats holds only this rank's, zeroed before).
void cudaStatsSketch(const void* input, sqzDataType_t dtype, size_t count, uint64_t seed, GradStats* devStats,
                     void* stream);

// Encode (+ error feedback when a.residual) into devPayload, which holds
// encodedBytes(p, a.count, a.stats != nullptr) bytes; a.stats, when set, is
// a device pointer copied into the statistics block. The non-quantizable
// count is not returned (it would need a sync): take it from the statistics.
void cudaEncode(const CodecParams& p, const EncodeArgs& a, void* devPayload, void* devWorkspace, void* stream);

// Validates the whole payload on the device before writing any of it, as
// the CPU decoder does (kernels/payload_checks.h): the header against
// `expect` and `bytes`, every block scale, the value scale and every top-K
// index (in range, strictly increasing: no duplicates). Anything wrong sets
// *devError to a nonzero code (see cudaDecodeErrorString) and leaves devOut
// untouched. *devError is only ever set, never cleared, and a decode into
// which it comes set (an earlier decode's error) writes nothing either.
// devWorkspace: cudaDecodeWorkspaceBytes(expect.params, expect.count) bytes,
// or null when that is 0 (a missing one is sqzInvalidUsage, not an
// allocation on the hot path).
void cudaDecode(const DecodeExpect& expect, const void* devPayload, size_t bytes, float* devOut, DecodeMode mode,
                int* devError, void* devWorkspace, void* stream);
const char* cudaDecodeErrorString(int code);

// Random-K without a payload (see randkGatherCpu / randkScatterCpu).
void cudaRandkGather(const CodecParams& p, const EncodeArgs& a, float* devValues, void* stream);
void cudaRandkScatter(const CodecParams& p, size_t count, uint64_t seed, uint64_t step, uint64_t chunkOffset,
                      const float* devValues, float* devOut, DecodeMode mode, void* stream);

// Every kernel of cuda_codec.cu (each template instance), as the addresses
// kernel launches and cudaFuncGetAttributes take: see cudaLoadAllKernels in
// kernels/cuda_device_ops.h. CUDA builds only.
std::vector<const void*> cudaCodecKernelEntries();

}  // namespace sqz
