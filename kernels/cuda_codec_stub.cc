// Builds without CUDA: the device codecs report that they are absent.
#include "common/error.h"
#include "kernels/cuda_codec.h"

namespace sqz {
namespace {
[[noreturn]] void noCuda() { fail(sqzInvalidUsage, "sqz was built without CUDA"); }
}  // namespace

bool cudaCodecAvailable() { return false; }
size_t cudaEncodeWorkspaceBytes(const CodecParams&, size_t) { return 0; }
size_t cudaDecodeWorkspaceBytes(const CodecParams&, size_t) { return 0; }
void cudaGradStats(const void*, sqzDataType_t, const float*, size_t, GradStats*, void*) { noCuda(); }
void cudaStatsSketch(const void*, sqzDataType_t, size_t, uint64_t, GradStats*, void*) { noCuda(); }
void cudaEncode(const CodecParams&, const EncodeArgs&, void*, void*, void*) { noCuda(); }
void cudaDecode(const DecodeExpect&, const void*, size_t, float*, DecodeMode, int*, void*, void*) { noCuda(); }
const char* cudaDecodeErrorString(int) { return "built without CUDA"; }
void cudaRandkGather(const CodecParams&, const EncodeArgs&, float*, void*) { noCuda(); }
void cudaRandkScatter(const CodecParams&, size_t, uint64_t, uint64_t, uint64_t, const float*, float*, DecodeMode,
                      void*) { noCuda(); }

}  // namespace sqz
