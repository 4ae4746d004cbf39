// What the environment asks of libsqz_mpi.so, read once per process with
// common/env.h (the library's own strict parser, so both read the same
// values, and both refuse the same malformed ones).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sqz::mpi {

struct InterposerConfig {
  std::string spec;   // SQZ_COMPRESSION; empty when unset or "none": forward everything
  size_t minBytes = 64 << 10;  // SQZ_MIN_BYTES: smaller calls are forwarded (the library's default, 64 KiB)
  uint64_t hash;      // of both; ranks compare it when they adopt a communicator
  std::string error;  // a malformed SQZ_MIN_BYTES or a refused SQZ_COMPRESSION (the library's message)

  bool serving() const { return !spec.empty(); }
  static const InterposerConfig& get();
};

}  // namespace sqz::mpi
