// The shared driver of sqz's perf binaries, after nccl-tests' common.cu:
// the same flags (-b -e -f -i -n -w -c -d -o -G, plus -m for an MPI baseline
// and -Z for a compression spec), launching under mpirun or torchrun, timing,
// and the table. Each binary fills in a CollectiveTest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sqz.h"

namespace sqz::perf {

struct Options {
  size_t minBytes = 32 << 20, maxBytes = 32 << 20;
  double stepFactor = 1;   // -f
  size_t stepBytes = 0;    // -i (used when -f is 1)
  int iters = 20, warmup = 5;
  int check = 1;
  std::vector<sqzDataType_t> types{sqzFloat32};
  std::vector<sqzRedOp_t> ops{sqzSum};
  bool mpiBaseline = false;  // -m 1: also time MPI_Allreduce in the same run
  std::string compression;   // -Z SPEC
  bool deviceBuffers = false;  // -G 1: buffers in GPU memory, calls on a CUDA stream
};

struct Env {
  int rank = 0, nranks = 1;
  sqzComm_t comm = nullptr;
  bool mpi = false;  // launched by mpirun (MPI initialised)
  // -G 1: the collective's buffers are device memory and its calls go on
  // this stream (the driver synchronizes it after each call).
  bool device = false;
  sqzCudaStream_t stream = nullptr;
};

// What one collective contributes to the driver.
struct CollectiveTest {
  const char* name;
  // busbw = algbw * busFactor(nranks), as nccl-tests defines it.
  double (*busFactor)(int nranks);
  // Fills the send buffer (host memory; the driver copies it to the device
  // with -G 1, and copies results back before expected/load/checkWrong). `lossy`: random values (a compressed run), else
  // small integers whose reductions are exact in every type.
  void (*fill)(void* send, size_t count, sqzDataType_t type, sqzRedOp_t op, int rank, int nranks, bool lossy);
  // Element i of the exact result (fp64), and of a received buffer.
  double (*expected)(size_t i, sqzDataType_t type, sqzRedOp_t op, int nranks, bool lossy);
  double (*load)(const void* recv, size_t i, sqzDataType_t type);
  // Elements that differ from the exact result beyond the type's rounding.
  size_t (*checkWrong)(const void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op, int rank, int nranks);
  sqzResult_t (*run)(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op, const Env& env);
  // The same collective through MPI, or null when there is no baseline.
  void (*runMpi)(const void* send, void* recv, size_t count, sqzDataType_t type, sqzRedOp_t op);
};

int runPerf(int argc, char** argv, const CollectiveTest& test);

}  // namespace sqz::perf
