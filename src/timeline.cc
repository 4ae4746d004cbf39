#include "src/timeline.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/error.h"
#include "common/log.h"

namespace sqz {

double monotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::unique_ptr<Timeline> Timeline::fromEnv(int rank, int nranks) {
  std::string path = envString("SQZ_TIMELINE");
  if (path.empty()) return nullptr;
  if (nranks > 1) {
    size_t slash = path.rfind('/');
    size_t dot = path.rfind('.');
    std::string suffix = ".rank" + std::to_string(rank);
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) path += suffix + ".json";
    else path.insert(dot, suffix);
  }
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    SQZ_WARN("SQZ_TIMELINE: cannot write %s", path.c_str());
    return nullptr;
  }
  std::unique_ptr<Timeline> t(new Timeline(f, rank));
  nlohmann::json meta = {{"name", "process_name"}, {"ph", "M"}, {"pid", rank}, {"args", {{"name", "sqz rank " + std::to_string(rank)}}}};
  std::fprintf(f, "[\n%s", meta.dump().c_str());
  t->first_ = false;
  SQZ_INFO("timeline: writing %s", path.c_str());
  return t;
}

void Timeline::allreduce(const sqzCallInfo& info, double startSeconds, double tuneSeconds) {
  char args[512];
  std::snprintf(args, sizeof args,
                "{\"plan\":\"%s\",\"count\":%zu,\"bytes\":%zu,\"wire_bytes\":%zu,\"ratio\":%.3f,"
                "\"gain\":%.4f,\"tune_ms\":%.3f,\"encode_ms\":%.3f,\"transfer_ms\":%.3f,\"decode_ms\":%.3f}",
                info.plan, info.count, info.bytes, info.wireBytes, info.compressionRatio, info.gain, tuneSeconds * 1e3,
                info.encodeSeconds * 1e3, info.transferSeconds * 1e3, info.decodeSeconds * 1e3);
  complete("allreduce", "sqz", 0, startSeconds, info.totalSeconds, args);
  if (tuneSeconds > 0) complete("tune", "sqz", 1, startSeconds, tuneSeconds, "");
}

Timeline::~Timeline() {
  std::fprintf(file_, "\n]\n");
  std::fclose(file_);
}

void Timeline::complete(const std::string& name, const std::string& category, int tid, double startSeconds,
                        double durationSeconds, const std::string& argsJson) {
  nlohmann::json ev = {{"name", name}, {"cat", category}, {"ph", "X"},         {"pid", rank_},
                       {"tid", tid},   {"ts", startSeconds * 1e6}, {"dur", durationSeconds * 1e6}};
  if (!argsJson.empty()) {
    nlohmann::json args = nlohmann::json::parse(argsJson, nullptr, false);
    SQZ_REQUIRE(!args.is_discarded() && args.is_object(), sqzInvalidArgument, "timeline args are not a JSON object");
    ev["args"] = args;
  }
  const std::string line = ev.dump();
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(file_, "%s%s", first_ ? "" : ",\n", line.c_str());
  first_ = false;
  std::fflush(file_);
}

}  // namespace sqz
