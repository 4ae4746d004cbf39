#include "src/mpi_interposer/adopted_comm.h"

#include <atomic>
#include <set>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "src/mpi_interposer/call_summary.h"
#include "src/mpi_interposer/interposer_config.h"

namespace sqz::mpi {

namespace {

// setUp's outcome: 0 not yet, 1 ready, 2 failed. Read on every served call
// without the lock.
std::mutex g_setUpMutex;
std::atomic<int> g_setUpState{0};
int g_commKeyval = MPI_KEYVAL_INVALID;
std::atomic<int> g_worldRank{-1};

// Entries alive, for the finalize callback. Its lock is never held while
// calling MPI: MPI may hold its attribute lock while it runs onCommFree,
// which takes this one.
std::mutex g_registryMutex;
std::set<AdoptedComm*>& registry() {
  static auto* entries = new std::set<AdoptedComm*>();  // outlives static destructors
  return *entries;
}

// Held while making an entry and caching it, so that two threads on one
// communicator (erroneous in MPI, but no worse here) make one entry.
std::mutex g_createMutex;

std::string commName(MPI_Comm comm) {
  char name[MPI_MAX_OBJECT_NAME] = "";
  int length = 0;
  PMPI_Comm_get_name(comm, name, &length);
  if (length > 0) return name;
  return formatString("%p", reinterpret_cast<void*>(comm));
}

}  // namespace

bool AdoptedComm::setUp() {
  if (const int state = g_setUpState.load(std::memory_order_acquire)) return state == 1;
  std::lock_guard<std::mutex> lock(g_setUpMutex);
  if (const int state = g_setUpState.load(std::memory_order_acquire)) return state == 1;
  int rank = -1;
  PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
  g_worldRank = rank;
  LogRankScope logRank(rank);
  int commKeyval = MPI_KEYVAL_INVALID, finalizeKeyval = MPI_KEYVAL_INVALID;
  if (PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, &AdoptedComm::onCommFree, &commKeyval, nullptr) != MPI_SUCCESS ||
      PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, &AdoptedComm::onFinalize, &finalizeKeyval, nullptr) !=
          MPI_SUCCESS ||
      PMPI_Comm_set_attr(MPI_COMM_SELF, finalizeKeyval, nullptr) != MPI_SUCCESS) {
    SQZ_WARN("libsqz_mpi: MPI refused an attribute keyval; every MPI_Allreduce goes to MPI");
    g_setUpState.store(2, std::memory_order_release);
    return false;
  }
  g_commKeyval = commKeyval;
  const InterposerConfig& config = InterposerConfig::get();
  int threadLevel = MPI_THREAD_SINGLE;
  PMPI_Query_thread(&threadLevel);
  SQZ_INFO("libsqz_mpi: %s (SQZ_MIN_BYTES=%zu, MPI thread level %d)",
           config.serving() ? formatString("serving float sums with SQZ_COMPRESSION=%s", config.spec.c_str()).c_str()
                            : "SQZ_COMPRESSION unset or none: forwarding every call to MPI",
           config.minBytes, threadLevel);
  g_setUpState.store(1, std::memory_order_release);
  return true;
}

int AdoptedComm::worldRank() { return g_worldRank.load(); }

AdoptedComm* AdoptedComm::of(MPI_Comm comm) {
  if (!setUp()) return nullptr;
  void* cached = nullptr;
  int found = 0;
  if (PMPI_Comm_get_attr(comm, g_commKeyval, &cached, &found) != MPI_SUCCESS) return nullptr;
  if (found) return static_cast<AdoptedComm*>(cached);
  std::lock_guard<std::mutex> lock(g_createMutex);
  if (PMPI_Comm_get_attr(comm, g_commKeyval, &cached, &found) != MPI_SUCCESS) return nullptr;
  if (found) return static_cast<AdoptedComm*>(cached);
  int inter = 0, size = 0;
  if (PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || PMPI_Comm_size(comm, &size) != MPI_SUCCESS) return nullptr;
  auto* entry = new AdoptedComm(comm);
  if (inter) entry->unservable_ = Route::kNotIntra;
  else if (size < 2) entry->unservable_ = Route::kSingleRank;
  if (PMPI_Comm_set_attr(comm, g_commKeyval, entry) != MPI_SUCCESS) {
    delete entry;
    return nullptr;
  }
  std::lock_guard<std::mutex> registryLock(g_registryMutex);
  registry().insert(entry);
  return entry;
}

Route AdoptedComm::allReduce(const void* send, void* recv, size_t count, sqzDataType_t type, sqzResult_t* result) {
  std::lock_guard<std::mutex> lock(mu_);
  if (unservable_ != Route::kServe) return unservable_;
  if (!sqz_ && !adopt()) return unservable_;
  *result = sqzAllReduce(send, recv, count, type, sqzSum, sqz_, nullptr);
  if (*result != sqzSuccess) {
    CallSummary::process().failed();
    LogRankScope logRank(worldRank());
    SQZ_WARN("libsqz_mpi: MPI_Allreduce of %zu %s on %s served by sqz failed: %s (%s)", count,
             type == sqzFloat64 ? "doubles" : "floats", commName(comm_).c_str(), sqzGetErrorString(*result),
             sqzGetLastError(sqz_));
    return Route::kServe;
  }
  sqzCallInfo info{};
  sqzGetCallInfo(sqz_, &info);
  CallSummary::process().served(info.bytes, info.wireBytes, info.compressionRatio * info.wireBytes);
  if (!loggedServed_) logFirstServed();
  return Route::kServe;
}

bool AdoptedComm::adopt() {
  LogRankScope logRank(worldRank());
  const InterposerConfig& config = InterposerConfig::get();
  int rank = 0, size = 0;
  PMPI_Comm_rank(comm_, &rank);
  PMPI_Comm_size(comm_, &size);
  // Rank 0's id and configuration; everyone checks the configuration
  // against its own before anyone joins sqz's rendezvous, so that a
  // mismatch costs no SQZ_TIMEOUT.
  struct Offer {
    uint64_t configHash;
    int32_t idReady;
    sqzUniqueId id;
  } offer{};
  if (rank == 0) {
    offer.configHash = config.hash;
    const sqzResult_t r = sqzGetUniqueId(&offer.id);
    offer.idReady = r == sqzSuccess;
    if (!offer.idReady)
      SQZ_WARN("libsqz_mpi: sqzGetUniqueId failed on %s: %s (%s)", commName(comm_).c_str(), sqzGetErrorString(r),
               sqzGetLastError(nullptr));
  }
  int agreed = 0;
  if (PMPI_Bcast(&offer, sizeof offer, MPI_BYTE, 0, comm_) == MPI_SUCCESS) {
    agreed = offer.idReady && offer.configHash == config.hash;
    if (offer.idReady && !agreed)
      SQZ_WARN("libsqz_mpi: SQZ_COMPRESSION or SQZ_MIN_BYTES differ from rank 0's on %s; "
               "its calls go to MPI",
               commName(comm_).c_str());
  }
  PMPI_Allreduce(MPI_IN_PLACE, &agreed, 1, MPI_INT, MPI_MIN, comm_);
  sqzComm_t made = nullptr;
  int ready = 0;
  if (agreed) {
    sqzResult_t r = sqzCommInitRank(&made, size, offer.id, rank);
    if (r == sqzSuccess) r = sqzCommSetCompression(made, config.spec.c_str());
    ready = r == sqzSuccess;
    if (!ready)
      SQZ_WARN("libsqz_mpi: cannot adopt %s (%d ranks) into sqz: %s (%s)", commName(comm_).c_str(), size,
               sqzGetErrorString(r), sqzGetLastError(made));
    PMPI_Allreduce(MPI_IN_PLACE, &ready, 1, MPI_INT, MPI_MIN, comm_);
  }
  if (!ready) {
    if (made) sqzCommDestroy(made);
    unservable_ = Route::kUnservable;
    SQZ_INFO("libsqz_mpi: forwarding every MPI_Allreduce on %s to MPI (a rank could not adopt it)",
             commName(comm_).c_str());
    return false;
  }
  sqz_ = made;
  SQZ_INFO("libsqz_mpi: adopted %s (rank %d of %d) into sqz, SQZ_COMPRESSION=%s, SQZ_MIN_BYTES=%zu",
           commName(comm_).c_str(), rank, size, config.spec.c_str(), config.minBytes);
  return true;
}

void AdoptedComm::logFirstServed() {
  loggedServed_ = true;
  if (logLevel() < LogLevel::kInfo) return;
  LogRankScope logRank(worldRank());
  sqzCallInfo info{};
  sqzGetCallInfo(sqz_, &info);
  SQZ_INFO("libsqz_mpi: first MPI_Allreduce served on %s: %zu bytes, plan %s (codec %s, %zu wire bytes, ratio %.2f)",
           commName(comm_).c_str(), info.bytes, info.plan, info.codec, info.wireBytes, info.compressionRatio);
}

void AdoptedComm::release(const char* event) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!sqz_) return;
  const sqzResult_t r = sqzCommDestroy(sqz_);
  sqz_ = nullptr;
  unservable_ = Route::kNotInitialized;
  LogRankScope logRank(worldRank());
  if (r != sqzSuccess) SQZ_WARN("libsqz_mpi: destroying an sqz communicator at %s: %s", event, sqzGetErrorString(r));
  else SQZ_INFO("libsqz_mpi: destroyed an sqz communicator at %s", event);
}

int AdoptedComm::onCommFree(MPI_Comm, int, void* attribute, void*) {
  auto* entry = static_cast<AdoptedComm*>(attribute);
  {
    std::lock_guard<std::mutex> lock(g_registryMutex);
    registry().erase(entry);
  }
  entry->release("MPI_Comm_free");
  delete entry;
  return MPI_SUCCESS;
}

int AdoptedComm::onFinalize(MPI_Comm, int, void*, void*) {
  {
    // Entries stay allocated: MPI may still run onCommFree for them while
    // it tears down its communicators.
    std::lock_guard<std::mutex> lock(g_registryMutex);
    for (AdoptedComm* entry : registry()) entry->release("MPI_Finalize");
  }
  LogRankScope logRank(worldRank());
  SQZ_INFO("libsqz_mpi: %s", CallSummary::process().line().c_str());
  return MPI_SUCCESS;
}

}  // namespace sqz::mpi
