// A cost profile (DESIGN.md section 3): per link class a LinkCurve, per
// device the codec throughputs, an optional user cost model, and where the
// numbers came from. Stored as versioned JSON, one file per topology
// fingerprint, under $XDG_CACHE_HOME/sqz/ (else ~/.cache/sqz/), or at
// SQZ_PROFILE. JSON (format "sqz-profile", version 1):
//   { "format": "sqz-profile", "version": 1,
//     "fingerprint": "v1-...", "source": "measured",  "note": "...",
//     "links": { "shm": { "points": [[bytes, seconds], ...], "source": "..." }, ... },
//     "codecs": { "cpu": { "q4": {"encode": Bps, "decode": Bps, "stats": Bps}, ... }, "gpu": {...} },
//     "cost_model": { "kind": "time" | "bits" | "packets",
//                     "payload_bytes": N, "header_bytes": H, "cost_per_packet": C },
//     "plans": { "elements": N, "element_bytes": 4, "tune_seconds": S, "seconds": { "qa2a:q4": S, ... } } }
// Every member but "format" and "version" is optional; what a file lacks
// comes from defaultProfile(). Fingerprint "any" matches every topology.
#pragma once

#include <array>
#include <map>
#include <string>

#include "src/tuner/codec_throughput.h"
#include "src/tuner/link_class.h"
#include "src/tuner/link_curve.h"
#include "src/tuner/wire_cost_model.h"

namespace sqz {

inline constexpr const char* kSourceMeasured = "measured";
inline constexpr const char* kSourceReference = "reference, not measured";
inline constexpr const char* kSourceDefaults = "defaults, not measured";

// Whole flat plans timed at calibration on the job's own buffer (all ranks
// running, the slowest rank's median): what the component model (codec
// throughput + link curve) misses, such as the full-buffer passes a plan
// makes (zeroing, averaging, storing), ranks sharing cores, and a shaper's
// burst. See CostModel's MeasuredPlans.
struct PlanTimings {
  double elements = 0;                    // the buffer size they were timed at (0: none)
  int elementBytes = 4;                   // of that buffer's type (4: fp32, 2: bf16/fp16)
  double tuneSeconds = 0;                 // auto's per-call statistics pass at that size
  std::map<std::string, double> seconds;  // plan name -> seconds of the collective alone
  bool empty() const { return elements <= 0 || seconds.empty(); }
};

struct Profile {
  static constexpr int kVersion = 1;

  int version = kVersion;
  std::string fingerprint = "any";
  std::string source = kSourceDefaults;
  std::string note;
  std::array<LinkCurve, kLinkClasses> links;           // empty: not in this profile
  std::array<std::string, kLinkClasses> linkSources;   // per-curve provenance
  CodecThroughput codecs;
  WireCostModel costModel;
  // Seconds every call pays whatever its plan: the ranks' agreement round
  // (a small all-to-all). Measured at calibration; 0 when unknown.
  double callOverheadSeconds = 0;
  // Bytes the network link (the flat link between nodes) lets go at once
  // after idle time beyond its steady rate: a token-bucket shaper's burst
  // (measureLinkBurstBytes). 0: none measured, every byte at the rate.
  double linkBurstBytes = 0;
  PlanTimings plans;
  // The same plans timed on the job's own buffer, where it is smaller than
  // the size `plans` tiles it to, back to back on drained links: a small
  // call's costs are mostly per message and per phase (latency, waking the
  // ranks that share a core, a step's codec pass in cache), which a
  // per-element correction from 2^20 elements cannot carry down to it.
  PlanTimings plansAtJobSize;

  // The curve for c: this profile's, else the default one.
  const LinkCurve& curve(LinkClass c) const;
  void setCurve(LinkClass c, LinkCurve curve, std::string source);

  std::string toJson() const;
  // Throws sqz::Error(sqzInvalidUsage) saying what is wrong.
  static Profile fromJson(const std::string& text);
  bool matches(const std::string& topologyFingerprint) const {
    return fingerprint == "any" || fingerprint == topologyFingerprint;
  }
};

// The documented defaults, deliberately conservative (pessimistic about
// the network, so an uncalibrated job compresses moderately rather than not
// at all):
//   self    0.5 us + 10 GB/s     shm   2 us + 5 GB/s     pcie  5 us + 12 GB/s
//   nvlink  5 us + 100 GB/s      ib    5 us + 10 GB/s    tcp   30 us + 1.25 GB/s (10 GbE)
// and codec throughputs of defaultThroughput().
const Profile& defaultProfile();

// $XDG_CACHE_HOME/sqz, else $HOME/.cache/sqz.
std::string profileCacheDir();
// SQZ_PROFILE when set, else <cache dir>/profile-<fingerprint>.json.
std::string profilePath(const std::string& fingerprint);
// Writes atomically (temporary file, then rename), creating directories.
void saveProfile(const Profile& p, const std::string& path);

// SQZ_CALIBRATE=off|quick|full (default quick): what a communicator does
// when no matching profile exists.
enum class CalibrateMode { Off, Quick, Full };
CalibrateMode calibrateMode();

struct ProfileLoad {
  enum class Status { Loaded, Missing, Corrupt, Foreign };
  Status status = Status::Missing;
  Profile profile;      // the loaded profile, or defaultProfile()
  std::string path;
  std::string why;      // empty when Loaded
  // True when the caller should measure (status != Loaded and
  // SQZ_CALIBRATE is not off); the profile is then the defaults meanwhile.
  bool shouldCalibrate = false;
};
const char* profileLoadStatusName(ProfileLoad::Status s);

// Never throws for a bad file: a missing, corrupt or foreign profile logs a
// warning and yields the defaults.
ProfileLoad loadProfile(const std::string& fingerprint);
ProfileLoad loadProfileFrom(const std::string& path, const std::string& fingerprint);

}  // namespace sqz
