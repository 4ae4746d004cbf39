#include "src/topology/gpu_probe.h"

#include <dlfcn.h>

#include <cctype>
#include <memory>

#if defined(SQZ_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace sqz {

// The few NVML entry points used, declared here (NVML's header is not part
// of the CUDA toolkit install): handles are opaque pointers, results ints
// (0 = NVML_SUCCESS), P2P capability index 2 = NVML_P2P_CAPS_INDEX_NVLINK,
// P2P status 0 = NVML_P2P_STATUS_OK.
struct SystemGpuPeers::Nvml {
  using Device = struct nvmlDevice_st*;
  void* lib = nullptr;
  int (*shutdown)() = nullptr;
  int (*byBusId)(const char*, Device*) = nullptr;
  int (*p2pStatus)(Device, Device, int, int*) = nullptr;
  static constexpr int kCapsNvlink = 2;
  static constexpr int kStatusOk = 0;
};

bool cudaDeviceUsable() {
#if defined(SQZ_HAVE_CUDA)
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
#else
  return false;
#endif
}

std::string currentGpuBusId() {
#if defined(SQZ_HAVE_CUDA)
  if (!cudaDeviceUsable()) return "";
  int dev = 0;
  char id[32] = "";
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetPCIBusId(id, sizeof id, dev) != cudaSuccess) return "";
  std::string s = id;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
#else
  return "";
#endif
}

SystemGpuPeers::SystemGpuPeers() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return;
  auto init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
  auto n = std::make_unique<Nvml>();
  n->lib = lib;
  n->shutdown = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlShutdown"));
  n->byBusId = reinterpret_cast<int (*)(const char*, Nvml::Device*)>(dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
  n->p2pStatus =
      reinterpret_cast<int (*)(Nvml::Device, Nvml::Device, int, int*)>(dlsym(lib, "nvmlDeviceGetP2PStatus"));
  // nvmlInit fails without a driver: then NVML knows nothing either.
  if (!init || !n->shutdown || !n->byBusId || !n->p2pStatus || init() != 0) {
    dlclose(lib);
    return;
  }
  nvml_ = n.release();
}

SystemGpuPeers::~SystemGpuPeers() {
  if (!nvml_) return;
  nvml_->shutdown();
  dlclose(nvml_->lib);
  delete nvml_;
}

const char* SystemGpuPeers::source() const {
  if (nvml_) return "nvml";
  return cudaDeviceUsable() ? "cuda" : "none";
}

bool SystemGpuPeers::nvlink(const std::string& busA, const std::string& busB) {
  if (busA.empty() || busB.empty() || busA == busB) return false;
  if (nvml_) {
    Nvml::Device a = nullptr, b = nullptr;
    int status = -1;
    return nvml_->byBusId(busA.c_str(), &a) == 0 && nvml_->byBusId(busB.c_str(), &b) == 0 &&
           nvml_->p2pStatus(a, b, Nvml::kCapsNvlink, &status) == 0 && status == Nvml::kStatusOk;
  }
#if defined(SQZ_HAVE_CUDA)
  int da = -1, db = -1, access = 0, atomics = 0;
  if (cudaDeviceGetByPCIBusId(&da, busA.c_str()) != cudaSuccess ||
      cudaDeviceGetByPCIBusId(&db, busB.c_str()) != cudaSuccess)
    return false;  // not both visible to this process: cannot tell, say PCIe
  if (cudaDeviceGetP2PAttribute(&access, cudaDevP2PAttrAccessSupported, da, db) != cudaSuccess ||
      cudaDeviceGetP2PAttribute(&atomics, cudaDevP2PAttrNativeAtomicSupported, da, db) != cudaSuccess)
    return false;
  return access != 0 && atomics != 0;
#else
  return false;
#endif
}

}  // namespace sqz
