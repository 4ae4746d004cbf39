#include "src/tuner/tune_table.h"

#include <algorithm>

#include "common/env.h"
#include "common/error.h"
#include "common/log.h"
#include "common/strict_number.h"
#include "src/tuner/algorithm_table.h"
#include "src/tuner/link_curve.h"

namespace sqz {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

bool parseBound(const std::string& t, uint64_t* out) { return parseByteSize(t.c_str(), UINT64_MAX, out); }

std::string formatBound(uint64_t v) {
  if (v == UINT64_MAX) return "inf";
  if (v == 0) return "0";
  if (v % (1ull << 30) == 0) return std::to_string(v >> 30) + "G";
  if (v % (1ull << 20) == 0) return std::to_string(v >> 20) + "M";
  if (v % (1ull << 10) == 0) return std::to_string(v >> 10) + "k";
  return std::to_string(v);
}

TuneEntry parseEntry(const std::string& text) {
  auto bad = [&text](const char* why) {
    fail(sqzInvalidUsage, "SQZ_TUNE entry '%s': %s (expected COLLECTIVE:MIN-MAX[:host|cuda]:@PLAN|@auto)",
         text.c_str(), why);
  };
  const size_t at = text.find('@');
  if (at == std::string::npos) bad("no '@' target");
  if (at == 0 || text[at - 1] != ':') bad("the target must follow a ':' (\"...:@plan\")");
  const std::vector<std::string> head = split(text.substr(0, at - 1), ':');
  if (head.size() < 2 || head.size() > 3) bad("expected collective, size range and optional memory type");
  TuneEntry e;
  e.collective = head[0];
  if (e.collective != "allreduce") bad("unknown collective (allreduce)");
  const size_t dash = head[1].find('-');
  if (dash == std::string::npos) bad("the size range is MIN-MAX");
  const std::string lo = head[1].substr(0, dash), hi = head[1].substr(dash + 1);
  if (!parseBound(lo, &e.minBytes)) bad("malformed lower size bound");
  if (hi == "inf") e.maxBytes = UINT64_MAX;
  else if (!parseBound(hi, &e.maxBytes) || e.maxBytes == UINT64_MAX) bad("malformed upper size bound");
  if (e.minBytes >= e.maxBytes) bad("empty size range (MIN must be below MAX)");
  if (head.size() == 3) {
    if (head[2] == "host") e.memory = MemoryType::Host;
    else if (head[2] == "cuda") e.memory = MemoryType::Cuda;
    else bad("unknown memory type (host, cuda)");
  }
  const std::string target = text.substr(at + 1);
  if (target.empty()) bad("empty target after '@'");
  if (target == "auto") {
    e.automatic = true;
  } else {
    e.automatic = false;
    try {
      e.plan = parsePlanName(target);
    } catch (const Error& err) {
      fail(sqzInvalidUsage, "SQZ_TUNE entry '%s': %s", text.c_str(), err.what());
    }
  }
  return e;
}

}  // namespace

const char* memoryTypeName(MemoryType m) {
  switch (m) {
    case MemoryType::Host: return "host";
    case MemoryType::Cuda: return "cuda";
    case MemoryType::Any: break;
  }
  return "any";
}

bool TuneEntry::matches(const std::string& coll, MemoryType mem, uint64_t bytes) const {
  return coll == collective && (memory == MemoryType::Any || memory == mem) && bytes >= minBytes &&
         bytes < maxBytes;
}

TuneTable TuneTable::parse(const std::string& text) {
  SQZ_REQUIRE(!text.empty(), sqzInvalidUsage, "SQZ_TUNE is empty");
  TuneTable t;
  for (const std::string& entry : split(text, '#')) {
    SQZ_REQUIRE(!entry.empty(), sqzInvalidUsage, "SQZ_TUNE '%s': empty entry (stray '#')", text.c_str());
    t.entries_.push_back(parseEntry(entry));
  }
  return t;
}

std::string TuneTable::defaultText(uint64_t autoFromBytes) {
  const uint64_t shmUpTo = std::min<uint64_t>(kShmPreferredMaxBytes, autoFromBytes);
  std::string text = "allreduce:0-" + formatBound(shmUpTo) + ":@shm";
  if (autoFromBytes > shmUpTo)
    text += "#allreduce:" + formatBound(shmUpTo) + "-" + formatBound(autoFromBytes) + ":@shm_rs";
  return text + "#allreduce:" + formatBound(autoFromBytes) + "-inf:@auto";
}

uint64_t TuneTable::autoFromBytesFor(const LinkCurve& curve) {
  const double half = curve.halfBandwidthBytes();
  if (!(half < static_cast<double>(kAutoFromBytes))) return kAutoFromBytes;
  return std::max<uint64_t>(kAutoFromMinBytes, static_cast<uint64_t>(half));
}

TuneTable TuneTable::fromEnv(uint64_t autoFromBytes) {
  TuneTable t = parse(defaultText(autoFromBytes));
  const std::string user = envString("SQZ_TUNE");
  if (!user.empty()) t.append(parse(user));
  SQZ_INFO("tuner: table in force: %s", t.toString().c_str());
  return t;
}

void TuneTable::append(const TuneTable& later) {
  entries_.insert(entries_.end(), later.entries_.begin(), later.entries_.end());
}

std::string TuneTable::toString() const {
  std::string out;
  for (const TuneEntry& e : entries_) {
    if (!out.empty()) out += "#";
    out += e.collective + ":" + formatBound(e.minBytes) + "-" + formatBound(e.maxBytes);
    if (e.memory != MemoryType::Any) out += std::string(":") + memoryTypeName(e.memory);
    out += ":@" + e.target();
  }
  return out;
}

std::optional<TuneEntry> TuneTable::lookup(const std::string& collective, MemoryType memory, uint64_t bytes) const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
    if (it->matches(collective, memory, bytes)) return *it;
  return std::nullopt;
}

}  // namespace sqz
