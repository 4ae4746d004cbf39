// Builds without CUDA: no pointer is ever classified as device memory, so
// the device path is unreachable except through these refusals.
#include "common/error.h"
#include "src/comm.h"
#include "src/device/device_path.h"

namespace sqz {

struct DevicePath::Impl {};

DevicePath::DevicePath(Communicator&) { fail(sqzInvalidUsage, "sqz was built without CUDA: no device buffers"); }
DevicePath::~DevicePath() = default;
void DevicePath::adoptNccl(void*) {}
void DevicePath::allReduce(const void*, void*, size_t, sqzDataType_t, sqzRedOp_t, void*, const CompressionPolicy&,
                           const void*, uint64_t) {}
void DevicePath::drain() {}
void DevicePath::forgetState(const void*) {}
sqzResult_t DevicePath::asyncError(std::string*) { return sqzSuccess; }
void DevicePath::abort() {}
void ncclRankAndSize(void*, int*, int*) { fail(sqzInvalidUsage, "sqz was built without CUDA: no NCCL"); }
void ncclBroadcastHostBytes(void*, void*, size_t) { fail(sqzInvalidUsage, "sqz was built without CUDA: no NCCL"); }

}  // namespace sqz
