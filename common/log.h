// SQZ_DEBUG=WARN|INFO|TRACE logging to stderr with NCCL's "host:pid:rank"
// prefix. The rank is per thread (set by the communicator running a call),
// so threads-as-ranks tests log the right rank.
#pragma once

namespace sqz {

enum class LogLevel { kNone = 0, kWarn = 1, kInfo = 2, kTrace = 3 };

LogLevel logLevel();
void logMessage(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Sets the rank shown in this thread's log prefix for the scope's lifetime.
class LogRankScope {
 public:
  explicit LogRankScope(int rank);
  ~LogRankScope();
  LogRankScope(const LogRankScope&) = delete;
  LogRankScope& operator=(const LogRankScope&) = delete;

 private:
  int previous_;
};

}  // namespace sqz

#define SQZ_LOG(level, ...)                                                  \
  do {                                                                       \
    if (::sqz::logLevel() >= (level)) ::sqz::logMessage((level), __VA_ARGS__); \
  } while (0)
#define SQZ_WARN(...) SQZ_LOG(::sqz::LogLevel::kWarn, __VA_ARGS__)
#define SQZ_INFO(...) SQZ_LOG(::sqz::LogLevel::kInfo, __VA_ARGS__)
#define SQZ_TRACE(...) SQZ_LOG(::sqz::LogLevel::kTrace, __VA_ARGS__)
