#include "src/tuner/profile.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/env.h"
#include "common/error.h"
#include "common/log.h"
#include "src/tuner/plan_name.h"

namespace sqz {

using nlohmann::json;

namespace {

Profile makeDefaultProfile() {
  Profile p;
  p.fingerprint = "any";
  p.source = kSourceDefaults;
  p.note = "built-in conservative defaults (src/tuner/profile.h)";
  struct D { LinkClass c; double lat, bw; };
  const D defaults[] = {{LinkClass::Self, 0.5e-6, 10e9}, {LinkClass::Shm, 2e-6, 5e9},
                        {LinkClass::Pcie, 5e-6, 12e9},   {LinkClass::NvLink, 5e-6, 100e9},
                        {LinkClass::Ib, 5e-6, 10e9},     {LinkClass::Tcp, 30e-6, 1.25e9}};
  for (const D& d : defaults) p.setCurve(d.c, LinkCurve::fromLatencyBandwidth(d.lat, d.bw), kSourceDefaults);
  p.codecs = defaultThroughput();
  return p;
}

double positiveNumber(const json& j, const char* what) {
  SQZ_REQUIRE(j.is_number(), sqzInvalidUsage, "%s must be a number", what);
  const double v = j.get<double>();
  SQZ_REQUIRE(std::isfinite(v) && v > 0, sqzInvalidUsage, "%s must be positive and finite", what);
  return v;
}

json planTimingsJson(const PlanTimings& t) {
  json js = json::object();
  for (const auto& [name, seconds] : t.seconds) js[name] = seconds;
  return json{{"elements", t.elements},
              {"element_bytes", t.elementBytes},
              {"tune_seconds", t.tuneSeconds},
              {"seconds", js}};
}

// `key` names the object in messages ("plans", "plans_at_job_size").
PlanTimings parsePlanTimings(const json& jp, const std::string& key) {
  SQZ_REQUIRE(jp.is_object() && jp.contains("elements") && jp.contains("seconds") && jp["seconds"].is_object(),
              sqzInvalidUsage, "\"%s\" needs elements and seconds: {plan: seconds}", key.c_str());
  PlanTimings t;
  t.elements = positiveNumber(jp["elements"], (key + ".elements").c_str());
  t.elementBytes = jp.value("element_bytes", 4);
  SQZ_REQUIRE(t.elementBytes == 2 || t.elementBytes == 4, sqzInvalidUsage, "%s.element_bytes must be 2 or 4",
              key.c_str());
  t.tuneSeconds = jp.value("tune_seconds", 0.0);
  SQZ_REQUIRE(t.tuneSeconds >= 0 && t.tuneSeconds < 60, sqzInvalidUsage, "%s.tune_seconds out of range", key.c_str());
  for (const auto& [name, seconds] : jp["seconds"].items()) {
    parsePlanName(name);  // throws for a name no plan has
    t.seconds[name] = positiveNumber(seconds, (key + ".seconds").c_str());
  }
  return t;
}

json rateJson(const CodecRates& r) { return json{{"encode", r.encode}, {"decode", r.decode}, {"stats", r.stats}}; }

}  // namespace

const Profile& defaultProfile() {
  static const Profile p = makeDefaultProfile();
  return p;
}

const LinkCurve& Profile::curve(LinkClass c) const {
  const LinkCurve& own = links[static_cast<int>(c)];
  if (!own.empty() || this == &defaultProfile()) return own;
  return defaultProfile().curve(c);
}

void Profile::setCurve(LinkClass c, LinkCurve curve, std::string src) {
  links[static_cast<int>(c)] = std::move(curve);
  linkSources[static_cast<int>(c)] = std::move(src);
}

std::string Profile::toJson() const {
  json j;
  j["format"] = "sqz-profile";
  j["version"] = version;
  j["fingerprint"] = fingerprint;
  j["source"] = source;
  if (!note.empty()) j["note"] = note;
  if (callOverheadSeconds > 0) j["call_overhead_seconds"] = callOverheadSeconds;
  if (linkBurstBytes > 0) j["link_burst_bytes"] = linkBurstBytes;
  json jl = json::object();
  for (int i = 0; i < kLinkClasses; ++i) {
    if (links[i].empty()) continue;
    json pts = json::array();
    for (const auto& pt : links[i].points()) pts.push_back(json::array({pt.bytes, pt.seconds}));
    json entry{{"points", pts}};
    if (!linkSources[i].empty()) entry["source"] = linkSources[i];
    jl[linkClassName(static_cast<LinkClass>(i))] = entry;
  }
  j["links"] = jl;
  json jc = json::object();
  for (Device d : {Device::Cpu, Device::Gpu}) {
    json jd = json::object();
    for (const auto& [key, r] : codecs.rates(d)) jd[key] = rateJson(r);
    if (!jd.empty()) jc[deviceName(d)] = jd;
  }
  j["codecs"] = jc;
  json cm{{"kind", costModel.kind == WireCostModel::Kind::Bits      ? "bits"
                   : costModel.kind == WireCostModel::Kind::Packets ? "packets"
                                                                    : "time"}};
  if (costModel.kind == WireCostModel::Kind::Packets) {
    cm["payload_bytes"] = costModel.payloadBytes;
    cm["header_bytes"] = costModel.headerBytes;
    cm["cost_per_packet"] = costModel.costPerPacket;
  }
  j["cost_model"] = cm;
  if (!plans.empty()) j["plans"] = planTimingsJson(plans);
  if (!plansAtJobSize.empty()) j["plans_at_job_size"] = planTimingsJson(plansAtJobSize);
  return j.dump(1) + "\n";
}

Profile Profile::fromJson(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(sqzInvalidUsage, "not valid JSON: %s", e.what());
  }
  try {
    SQZ_REQUIRE(j.is_object() && j.value("format", "") == "sqz-profile", sqzInvalidUsage,
                "not an sqz profile (\"format\": \"sqz-profile\" missing)");
    SQZ_REQUIRE(j.contains("version") && j["version"].is_number_integer(), sqzInvalidUsage, "no integer version");
    const int version = j["version"].get<int>();
    SQZ_REQUIRE(version == kVersion, sqzInvalidUsage, "profile version %d, this library reads version %d", version,
                kVersion);
    Profile p;  // codecs a file lacks fall back to defaultThroughput() on lookup
    p.fingerprint = j.value("fingerprint", "any");
    p.source = j.value("source", kSourceDefaults);
    p.note = j.value("note", "");
    p.callOverheadSeconds = j.value("call_overhead_seconds", 0.0);
    SQZ_REQUIRE(p.callOverheadSeconds >= 0 && p.callOverheadSeconds < 60, sqzInvalidUsage,
                "call_overhead_seconds out of range");
    p.linkBurstBytes = j.value("link_burst_bytes", 0.0);
    SQZ_REQUIRE(p.linkBurstBytes >= 0 && p.linkBurstBytes < 1e12, sqzInvalidUsage, "link_burst_bytes out of range");
    if (j.contains("links")) {
      const json& jl = j["links"];
      SQZ_REQUIRE(jl.is_object(), sqzInvalidUsage, "\"links\" must be an object");
      for (const auto& [name, entry] : jl.items()) {
        LinkClass c;
        SQZ_REQUIRE(parseLinkClass(name, &c), sqzInvalidUsage, "unknown link class \"%s\"", name.c_str());
        SQZ_REQUIRE(entry.is_object() && entry.contains("points") && entry["points"].is_array(), sqzInvalidUsage,
                    "link \"%s\" needs \"points\": [[bytes, seconds], ...]", name.c_str());
        std::vector<LinkCurve::Point> pts;
        for (const json& pt : entry["points"]) {
          SQZ_REQUIRE(pt.is_array() && pt.size() == 2, sqzInvalidUsage, "link \"%s\": a point is [bytes, seconds]",
                      name.c_str());
          pts.push_back({positiveNumber(pt[0], "bytes"), positiveNumber(pt[1], "seconds")});
        }
        p.setCurve(c, LinkCurve(std::move(pts)), entry.value("source", p.source));
      }
    }
    if (j.contains("codecs")) {
      const json& jc = j["codecs"];
      SQZ_REQUIRE(jc.is_object(), sqzInvalidUsage, "\"codecs\" must be an object");
      for (const auto& [devName, jd] : jc.items()) {
        Device d;
        SQZ_REQUIRE(parseDevice(devName, &d), sqzInvalidUsage, "unknown device \"%s\"", devName.c_str());
        SQZ_REQUIRE(jd.is_object(), sqzInvalidUsage, "codecs.%s must be an object", devName.c_str());
        for (const auto& [key, jr] : jd.items()) {
          SQZ_REQUIRE(jr.is_object() && jr.contains("encode") && jr.contains("decode") && jr.contains("stats"),
                      sqzInvalidUsage, "codecs.%s.%s needs encode, decode and stats", devName.c_str(), key.c_str());
          p.codecs.set(d, key, {positiveNumber(jr["encode"], "encode"), positiveNumber(jr["decode"], "decode"),
                                positiveNumber(jr["stats"], "stats")});
        }
      }
    }
    if (j.contains("cost_model")) {
      const json& cm = j["cost_model"];
      SQZ_REQUIRE(cm.is_object(), sqzInvalidUsage, "\"cost_model\" must be an object");
      const std::string kind = cm.value("kind", "time");
      if (kind == "time") {
        p.costModel.kind = WireCostModel::Kind::Time;
      } else if (kind == "bits") {
        p.costModel.kind = WireCostModel::Kind::Bits;
      } else if (kind == "packets") {
        p.costModel.kind = WireCostModel::Kind::Packets;
        SQZ_REQUIRE(cm.contains("payload_bytes"), sqzInvalidUsage, "packets cost model needs payload_bytes");
        p.costModel.payloadBytes = positiveNumber(cm["payload_bytes"], "payload_bytes");
        p.costModel.headerBytes = cm.contains("header_bytes") ? cm["header_bytes"].get<double>() : 0.0;
        p.costModel.costPerPacket =
            cm.contains("cost_per_packet") ? positiveNumber(cm["cost_per_packet"], "cost_per_packet") : 1.0;
      } else {
        fail(sqzInvalidUsage, "unknown cost model \"%s\" (time, bits, packets)", kind.c_str());
      }
    }
    if (j.contains("plans")) p.plans = parsePlanTimings(j["plans"], "plans");
    if (j.contains("plans_at_job_size")) p.plansAtJobSize = parsePlanTimings(j["plans_at_job_size"], "plans_at_job_size");
    return p;
  } catch (const json::exception& e) {
    fail(sqzInvalidUsage, "malformed profile: %s", e.what());
  }
}

std::string profileCacheDir() {
  std::string xdg = envString("XDG_CACHE_HOME");
  if (!xdg.empty()) return xdg + "/sqz";
  return envString("HOME", "/tmp") + "/.cache/sqz";
}

std::string profilePath(const std::string& fingerprint) {
  std::string forced = envString("SQZ_PROFILE");
  if (!forced.empty()) return forced;
  return profileCacheDir() + "/profile-" + fingerprint + ".json";
}

namespace {

void makeDirs(const std::string& dir) {
  for (size_t at = 1; at <= dir.size(); ++at) {
    if (at != dir.size() && dir[at] != '/') continue;
    const std::string part = dir.substr(0, at);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      fail(sqzSystemError, "cannot create %s: %s", part.c_str(), std::strerror(errno));
  }
}

}  // namespace

void saveProfile(const Profile& p, const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) makeDirs(path.substr(0, slash));
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    SQZ_REQUIRE(out.good(), sqzSystemError, "cannot write %s", tmp.c_str());
    out << p.toJson();
    out.close();
    SQZ_REQUIRE(out.good(), sqzSystemError, "cannot write %s", tmp.c_str());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(sqzSystemError, "cannot rename %s to %s: %s", tmp.c_str(), path.c_str(), std::strerror(err));
  }
}

CalibrateMode calibrateMode() {
  const std::string v = envString("SQZ_CALIBRATE", "quick");
  if (v == "off" || v == "0" || v == "none") return CalibrateMode::Off;
  if (v == "full") return CalibrateMode::Full;
  if (v != "quick") SQZ_WARN("ignoring SQZ_CALIBRATE=%s (off, quick, full): using quick", v.c_str());
  return CalibrateMode::Quick;
}

const char* profileLoadStatusName(ProfileLoad::Status s) {
  switch (s) {
    case ProfileLoad::Status::Loaded: return "loaded";
    case ProfileLoad::Status::Missing: return "missing";
    case ProfileLoad::Status::Corrupt: return "corrupt";
    case ProfileLoad::Status::Foreign: return "foreign";
  }
  return "invalid";
}

ProfileLoad loadProfileFrom(const std::string& path, const std::string& fingerprint) {
  ProfileLoad r;
  r.path = path;
  r.profile = defaultProfile();
  std::ifstream in(path);
  if (!in.good()) {
    r.status = ProfileLoad::Status::Missing;
    r.why = "no profile at " + path;
  } else {
    std::stringstream text;
    text << in.rdbuf();
    try {
      Profile p = Profile::fromJson(text.str());
      if (!p.matches(fingerprint)) {
        r.status = ProfileLoad::Status::Foreign;
        r.why = "profile " + path + " is for topology " + p.fingerprint + ", not " + fingerprint;
      } else {
        r.status = ProfileLoad::Status::Loaded;
        r.profile = std::move(p);
        SQZ_INFO("tuner: loaded profile %s (%s)", path.c_str(), r.profile.source.c_str());
        return r;
      }
    } catch (const Error& e) {
      r.status = ProfileLoad::Status::Corrupt;
      r.why = "profile " + path + " is unreadable: " + e.what();
    }
  }
  const CalibrateMode mode = calibrateMode();
  r.shouldCalibrate = mode != CalibrateMode::Off;
  if (r.shouldCalibrate && r.status == ProfileLoad::Status::Missing)
    SQZ_INFO("tuner: %s; calibrating", r.why.c_str());
  else
    SQZ_WARN("tuner: %s; %s", r.why.c_str(),
             r.shouldCalibrate ? "recalibrating (built-in defaults meanwhile)"
                               : "SQZ_CALIBRATE=off: using the built-in defaults (src/tuner/profile.h)");
  return r;
}

ProfileLoad loadProfile(const std::string& fingerprint) {
  return loadProfileFrom(profilePath(fingerprint), fingerprint);
}

}  // namespace sqz
