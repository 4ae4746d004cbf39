#include "src/mpi_interposer/interposer_config.h"

#include "common/env.h"
#include "common/error.h"
#include "src/comm.h"

namespace sqz::mpi {

namespace {

uint64_t fnv1a(const std::string& text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

InterposerConfig read() {
  InterposerConfig c;
  c.spec = envString("SQZ_COMPRESSION");
  if (c.spec == "none") c.spec.clear();
  // The same variable, parser and default as the communicator's own
  // threshold (CommConfig::fromEnv), so a call forwarded here is one sqz
  // would have sent exactly anyway; a malformed value, or a spec sqz
  // refuses, is an error for every call the interposer would serve.
  try {
    c.minBytes = static_cast<size_t>(envBytes("SQZ_MIN_BYTES", 64 << 10));
  } catch (const Error& e) {
    c.error = e.what();
  }
  try {
    if (c.serving()) CompressionPolicy::parse(c.spec);
  } catch (const Error& e) {
    if (c.error.empty()) c.error = "SQZ_COMPRESSION=" + c.spec + ": " + e.what();
  }
  c.hash = fnv1a(std::to_string(c.minBytes), fnv1a(c.spec));
  return c;
}

}  // namespace

const InterposerConfig& InterposerConfig::get() {
  static const InterposerConfig config = read();
  return config;
}

}  // namespace sqz::mpi
