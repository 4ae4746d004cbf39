// A rank as a process under mpirun, with device buffers: every rank shares
// the one GPU (SQZ_TRANSPORT=ucx stages the encoded payloads through host
// memory). Every codec x type x size on a fresh error-feedback state, each
// result checked against the fp64 reference with the codec's bound (the
// thread tests' check) and bitwise identical on all ranks.
//   mpirun -np N gpu_rank_process
//   gpu_rank_process --probe        (no MPI: only whether a device is seen)
// Exit code: 0 ok, 1 a check or call failed, 77 no CUDA device (skipped).
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "gpu/gpu_check.h"
#include "harness/reference.h"

namespace {

using sqz::test::DeviceBuffer;

int localRank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK", "SLURM_LOCALID"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sqz::test::preferEagerModuleLoading();
  std::string why;
  if (!sqz::test::cudaDevicePresent(&why)) {
    std::printf("no CUDA device: skipping (%s)\n", why.c_str());
    return sqz::test::kSkipCode;
  }
  if (argc > 1 && std::string(argv[1]) == "--probe") return 0;
  setenv("SQZ_TRANSPORT", "ucx", 0);
  setenv("SQZ_MIN_BYTES", "0", 0);
  setenv("SQZ_TIMEOUT", "60", 0);
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1, devices = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  cudaGetDeviceCount(&devices);
  cudaSetDevice(localRank() % devices);
  sqzUniqueId id;
  if (rank == 0 && sqzGetUniqueId(&id) != sqzSuccess) {
    std::fprintf(stderr, "sqzGetUniqueId: %s\n", sqzGetLastError(nullptr));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  sqzComm_t comm = nullptr;
  if (sqzCommInitRank(&comm, n, id, rank) != sqzSuccess) {
    std::fprintf(stderr, "rank %d: sqzCommInitRank: %s\n", rank, sqzGetLastError(nullptr));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  const size_t sizes[] = {1, 1023, 100003, (size_t{1} << 20) + 3};
  const sqzDataType_t types[] = {sqzFloat32, sqzFloat16, sqzBfloat16};
  int failures = 0, calls = 0;
  uint64_t seed = 1;
  // Every call's state lives to the end: none is made at a destroyed one's
  // address, whose residual the device path would still hold.
  std::vector<sqzState_t> states;
  for (const std::string& spec : sqz::test::allSpecs()) {
    for (sqzDataType_t type : types) {
      for (size_t count : sizes) {
        for (sqzRedOp_t op : {sqzSum, sqzAvg}) {
          if (op == sqzAvg && count != 100003) continue;
          ++seed;
          const size_t bytes = count * sqz::dataTypeSize(type);
          std::string failure;
          std::vector<unsigned char> out(bytes);
          sqzCallInfo info{};
          try {
            std::vector<unsigned char> input = sqz::test::makeInput(type, sqzSum, rank, count, seed);
            DeviceBuffer send(bytes, stream), recv(bytes, stream);
            send.upload(input.data(), bytes, stream);
            sqzState_t state = nullptr;
            sqzResult_t r = sqzStateCreate(comm, count, type, &state);
            if (r == sqzSuccess)
              r = sqzAllReduceEx(send.get(), recv.get(), count, type, op, spec.c_str(), state, comm,
                                 reinterpret_cast<sqzCudaStream_t>(stream));
            if (r != sqzSuccess) {
              failure = std::string("call failed: ") + sqzGetErrorString(r) + " (" + sqzGetLastError(comm) + ")";
            } else {
              sqzGetCallInfo(comm, &info);
              recv.download(out.data(), bytes, stream);
              sqzResult_t asyncError = sqzSuccess;
              sqzCommGetAsyncError(comm, &asyncError);
              if (asyncError != sqzSuccess) failure = std::string("async error: ") + sqzGetErrorString(asyncError);
            }
            if (state) states.push_back(state);
            if (failure.empty()) failure = sqz::test::checkDevicePlan(info);
            if (failure.empty()) {
              std::vector<std::vector<unsigned char>> inputs(n);
              for (int q = 0; q < n; ++q) inputs[q] = sqz::test::makeInput(type, sqzSum, q, count, seed);
              failure = sqz::test::checkDeviceResult(inputs, out.data(), type, op, count, info);
            }
          } catch (const std::exception& e) {
            failure = e.what();
          }
          // Identical on all ranks (compared even when this rank failed, so
          // that every rank takes part in every collective).
          uint64_t h = sqz::test::fnv1a(out.data(), bytes);
          std::vector<uint64_t> all(n);
          MPI_Allgather(&h, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
          for (int q = 0; q < n && failure.empty(); ++q)
            if (all[q] != all[0]) failure = "output of rank " + std::to_string(q) + " differs from rank 0's";
          ++calls;
          if (!failure.empty()) {
            ++failures;
            std::fprintf(stderr, "rank %d: %s %s %s count %zu (plan %s): %s\n", rank, spec.c_str(),
                         sqz::dataTypeName(type), sqz::redOpName(op), count, info.plan, failure.c_str());
          }
        }
      }
    }
  }
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::printf("gpu processes: %d ranks sharing the GPU, %d device allreduces each (%zu codecs), %d failures\n", n,
                calls, sqz::test::allSpecs().size(), total);
  cudaStreamDestroy(stream);
  for (sqzState_t s : states) sqzStateDestroy(s);
  sqzCommDestroy(comm);
  MPI_Finalize();
  return total ? 1 : 0;
}
