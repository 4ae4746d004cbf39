// What ranks must agree on, beyond a call's own arguments, to send the same
// messages: the hashes in the agreed part of the call header
// (collectives/call_agreement.h). A rank that differs gets sqzInvalidUsage
// on every rank, with the differing field named, instead of a hang or a
// silently wrong sum.
#pragma once

#include <cstdint>
#include <string>

namespace sqz {

struct CommConfig;

// FNV-1a of the text: the header's hash of a compression spec or plan name.
uint32_t textHash(const std::string& text);

// Every communicator setting that changes which messages a call sends:
// SQZ_CHUNK_BYTES, SQZ_DIRECT_MAX_BYTES, SQZ_MIN_BYTES,
// SQZ_STATS_EVERY_MAX, SQZ_TUNE_MODE, and what auto chooses by
// (AutoTuner::agreedSettings: the SQZ_TUNE table in force, SQZ_AUTO_CODECS, SQZ_MOMENTUM).
uint32_t settingsHash(const CommConfig& config, const std::string& tuneTable);

// The codecs' random stream of one call (stochastic rounding, random-K
// indices): a hash of (seed, step); never 0, which means "encodes nothing".
uint64_t rngKey(uint64_t seed, uint64_t step);

}  // namespace sqz
