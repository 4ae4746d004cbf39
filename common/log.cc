#include "common/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"

namespace sqz {
namespace {

thread_local int t_rank = -1;

LogLevel parseLevel() {
  const char* v = std::getenv("SQZ_DEBUG");
  if (!v) return LogLevel::kNone;
  if (!strcasecmp(v, "WARN")) return LogLevel::kWarn;
  if (!strcasecmp(v, "INFO")) return LogLevel::kInfo;
  if (!strcasecmp(v, "TRACE")) return LogLevel::kTrace;
  return LogLevel::kNone;
}

const char* levelName(LogLevel l) {
  switch (l) {
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kTrace: return "TRACE";
    default: return "";
  }
}

}  // namespace

LogLevel logLevel() {
  static const LogLevel level = parseLevel();
  return level;
}

void logMessage(LogLevel level, const char* fmt, ...) {
  char host[64] = "?";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  va_list ap;
  va_start(ap, fmt);
  std::string msg = formatStringV(fmt, ap);
  va_end(ap);
  std::string rank = t_rank >= 0 ? std::to_string(t_rank) : std::string("-");
  // One fprintf per line so that lines from concurrent ranks do not interleave.
  std::fprintf(stderr, "%s:%d:%s sqz %s %s\n", host, static_cast<int>(getpid()),
               rank.c_str(), levelName(level), msg.c_str());
}

LogRankScope::LogRankScope(int rank) : previous_(t_rank) { t_rank = rank; }
LogRankScope::~LogRankScope() { t_rank = previous_; }

}  // namespace sqz
