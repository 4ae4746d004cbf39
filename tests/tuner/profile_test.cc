#include "src/tuner/profile.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/error.h"
#include "src/codec/codec_spec.h"
#include "src/tuner/reference_links.h"
#include "src/tuner/topology_fingerprint.h"

namespace sqz {
namespace {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sqz_profile_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  std::string dir_;
};

Profile sampleProfile() {
  Profile p;
  p.fingerprint = "v1-4r2n-cpu-0123456789abcdef";
  p.source = kSourceMeasured;
  p.note = "unit test";
  p.setCurve(LinkClass::Shm, LinkCurve({{1024, 2e-6}, {4096, 3e-6}, {16384, 7e-6}}), kSourceMeasured);
  p.setCurve(LinkClass::Tcp, LinkCurve::fromLatencyBandwidth(50e-6, 1.1e8), kSourceMeasured);
  p.codecs.set(Device::Cpu, "q4", {2.5e9, 20e9, 3e9});
  p.codecs.set(Device::Gpu, "topk", {4e11, 9e12, 1.5e12});
  p.costModel.kind = WireCostModel::Kind::Packets;
  p.costModel.payloadBytes = 222;
  p.costModel.headerBytes = 13;
  p.costModel.costPerPacket = 0.5;
  p.plans.elements = 1 << 20;
  p.plans.elementBytes = 2;
  p.plans.tuneSeconds = 1.25e-3;
  p.plans.seconds["qa2a:q4"] = 6.5e-3;
  p.plans.seconds["sparse_ag:topk:0.01"] = 7.25e-3;
  p.plansAtJobSize.elements = 7850;
  p.plansAtJobSize.seconds["gather:sign:rot"] = 3.0e-3;
  p.linkBurstBytes = 262144;
  return p;
}

TEST_F(ProfileTest, JsonRoundTripKeepsEveryField) {
  Profile p = sampleProfile();
  const std::string text = p.toJson();
  Profile q = Profile::fromJson(text);
  EXPECT_EQ(q.toJson(), text);
  EXPECT_EQ(q.fingerprint, p.fingerprint);
  EXPECT_EQ(q.source, "measured");
  EXPECT_DOUBLE_EQ(q.curve(LinkClass::Shm).time(4096), 3e-6);
  EXPECT_DOUBLE_EQ(q.curve(LinkClass::Tcp).time(1 << 20), p.curve(LinkClass::Tcp).time(1 << 20));
  EXPECT_DOUBLE_EQ(q.codecs.lookup(Device::Cpu, parseCodecSpec("q4")).encode, 2.5e9);
  EXPECT_EQ(q.costModel.kind, WireCostModel::Kind::Packets);
  EXPECT_EQ(q.costModel.payloadBytes, 222);
  EXPECT_EQ(q.costModel.headerBytes, 13);
  EXPECT_EQ(q.costModel.costPerPacket, 0.5);
  EXPECT_EQ(q.plans.elements, 1 << 20);
  EXPECT_EQ(q.plans.elementBytes, 2);
  EXPECT_EQ(q.plans.tuneSeconds, 1.25e-3);
  EXPECT_EQ(q.plans.seconds, p.plans.seconds);
  EXPECT_EQ(q.plansAtJobSize.elements, 7850);
  EXPECT_EQ(q.plansAtJobSize.elementBytes, 4);
  EXPECT_EQ(q.plansAtJobSize.seconds, p.plansAtJobSize.seconds);
  EXPECT_EQ(q.linkBurstBytes, 262144);
  // A class the file lacks falls back to the defaults.
  EXPECT_DOUBLE_EQ(q.curve(LinkClass::Ib).time(1024), defaultProfile().curve(LinkClass::Ib).time(1024));
}

TEST_F(ProfileTest, SaveAndLoadByFingerprintUnderXdgCacheHome) {
  ScopedEnv xdg("XDG_CACHE_HOME", (dir_ + "/cache").c_str());
  ScopedEnv forced("SQZ_PROFILE", nullptr);
  Profile p = sampleProfile();
  const std::string path = profilePath(p.fingerprint);
  EXPECT_EQ(path, dir_ + "/cache/sqz/profile-" + p.fingerprint + ".json");
  saveProfile(p, path);  // creates cache/sqz
  ProfileLoad l = loadProfile(p.fingerprint);
  EXPECT_EQ(l.status, ProfileLoad::Status::Loaded);
  EXPECT_FALSE(l.shouldCalibrate);
  EXPECT_EQ(l.profile.toJson(), p.toJson());
}

TEST_F(ProfileTest, SqzProfileOverridesThePath) {
  ScopedEnv forced("SQZ_PROFILE", (dir_ + "/mine.json").c_str());
  EXPECT_EQ(profilePath("anything"), dir_ + "/mine.json");
}

TEST_F(ProfileTest, CorruptFileWarnsAndGivesDefaults) {
  ScopedEnv cal("SQZ_CALIBRATE", "off");
  for (const char* text : {"{not json", "[]", "{\"format\": \"sqz-profile\", \"version\": 99}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"links\": {\"shm\": {\"points\": "
                           "[[4096, 1e-5], [1024, 2e-5]]}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"links\": {\"warp\": {\"points\": []}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"cost_model\": {\"kind\": \"joules\"}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"codecs\": {\"cpu\": {\"q4\": "
                           "{\"encode\": \"fast\", \"decode\": 1, \"stats\": 1}}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"plans\": {\"elements\": 1024, "
                           "\"seconds\": {\"warp:q4\": 0.001}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"plans\": {\"elements\": 1024, "
                           "\"seconds\": {\"qa2a:q4\": -1}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"plans\": {\"elements\": 1024, "
                           "\"element_bytes\": 3, \"seconds\": {}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"plans_at_job_size\": {\"elements\": "
                           "0, \"seconds\": {\"qa2a:q4\": 0.001}}}",
                           "{\"format\": \"sqz-profile\", \"version\": 1, \"link_burst_bytes\": -1}"}) {
    write(dir_ + "/bad.json", text);
    ProfileLoad l = loadProfileFrom(dir_ + "/bad.json", "v1-x");
    EXPECT_EQ(l.status, ProfileLoad::Status::Corrupt) << text;
    EXPECT_FALSE(l.why.empty());
    EXPECT_EQ(l.profile.source, kSourceDefaults);
    EXPECT_FALSE(l.shouldCalibrate);
  }
}

TEST_F(ProfileTest, ForeignFingerprintGivesDefaultsAndAsksForCalibration) {
  ScopedEnv cal("SQZ_CALIBRATE", "quick");
  Profile p = sampleProfile();
  saveProfile(p, dir_ + "/p.json");
  ProfileLoad l = loadProfileFrom(dir_ + "/p.json", "v1-4r2n-cpu-ffffffffffffffff");
  EXPECT_EQ(l.status, ProfileLoad::Status::Foreign);
  EXPECT_TRUE(l.shouldCalibrate);
  EXPECT_EQ(l.profile.source, kSourceDefaults);
  // A reference profile ("any") matches every topology.
  saveProfile(referenceProfile("nvlink4", "ib-ndr"), dir_ + "/ref.json");
  ProfileLoad r = loadProfileFrom(dir_ + "/ref.json", "v1-4r2n-cpu-ffffffffffffffff");
  EXPECT_EQ(r.status, ProfileLoad::Status::Loaded);
  EXPECT_EQ(r.profile.source, kSourceReference);
}

TEST_F(ProfileTest, MissingFileWithCalibrationOffUsesDocumentedDefaults) {
  ScopedEnv cal("SQZ_CALIBRATE", "off");
  ProfileLoad l = loadProfileFrom(dir_ + "/absent.json", "v1-x");
  EXPECT_EQ(l.status, ProfileLoad::Status::Missing);
  EXPECT_FALSE(l.shouldCalibrate);
  EXPECT_EQ(l.profile.source, kSourceDefaults);
  // The documented default for tcp: 30 us + 1.25 GB/s.
  EXPECT_NEAR(l.profile.curve(LinkClass::Tcp).time(1 << 20), 30e-6 + (1 << 20) / 1.25e9, 1e-12);
  ScopedEnv quick("SQZ_CALIBRATE", "quick");
  EXPECT_TRUE(loadProfileFrom(dir_ + "/absent.json", "v1-x").shouldCalibrate);
}

// sign:rot costs a transform each way more than the plain sign: it never
// borrows the sign's rates (a profile's "sign" entry), at any block size.
TEST(CodecThroughputTable, RotatedSignHasItsOwnRates) {
  EXPECT_EQ(codecFamily(parseCodecSpec("sign")), "sign");
  EXPECT_EQ(codecFamily(parseCodecSpec("sign:block=64")), "sign");
  EXPECT_EQ(codecFamily(parseCodecSpec("sign:rot")), "sign:rot");
  EXPECT_EQ(codecFamily(parseCodecSpec("sign:block=64:rot")), "sign:rot");
  CodecThroughput t;
  t.set(Device::Cpu, "sign", {5e9, 6e9, 7e9});
  EXPECT_DOUBLE_EQ(t.lookup(Device::Cpu, parseCodecSpec("sign:block=64")).encode, 5e9);
  for (Device d : {Device::Cpu, Device::Gpu}) {
    const CodecRates rot = t.lookup(d, parseCodecSpec("sign:block=64:rot"));
    const CodecRates def = defaultThroughput().lookup(d, parseCodecSpec("sign:rot"));
    EXPECT_DOUBLE_EQ(rot.encode, def.encode) << deviceName(d);
    EXPECT_DOUBLE_EQ(rot.decode, def.decode) << deviceName(d);
    EXPECT_NE(def.encode, 1e9) << deviceName(d) << ": no entry of its own";
  }
  // A calibrated "sign:rot" entry wins over the default.
  t.set(Device::Cpu, "sign:rot", {1e8, 2e8, 7e9});
  EXPECT_DOUBLE_EQ(t.lookup(Device::Cpu, parseCodecSpec("sign:rot")).encode, 1e8);
}

TEST(TopologyFingerprint, DependsOnLayoutNotRankOrder) {
  const std::string a = topologyFingerprint({"hostA", "hostA", "hostB", "hostB"}, false);
  EXPECT_EQ(a, topologyFingerprint({"hostB", "hostA", "hostB", "hostA"}, false));
  EXPECT_NE(a, topologyFingerprint({"hostA", "hostA", "hostA", "hostB"}, false));
  EXPECT_NE(a, topologyFingerprint({"hostA", "hostA", "hostB", "hostB"}, true));
  EXPECT_EQ(a.rfind("v1-4r2n-cpu-", 0), 0u) << a;
}

TEST(ReferenceProfiles, AreMarkedAndCiteSources) {
  for (const ReferenceLink& l : referenceLinks()) {
    Profile p = referenceProfile(l.name);
    EXPECT_EQ(p.source, kSourceReference);
    EXPECT_NE(p.linkSources[static_cast<int>(l.linkClass)].find("reference, not measured"), std::string::npos);
    EXPECT_NE(std::string(l.source).find("http"), std::string::npos) << l.name;
    EXPECT_NEAR(p.curve(l.linkClass).time(256.0 * 1024 * 1024), l.latencySeconds + 256.0 * 1024 * 1024 / l.bytesPerSecond,
                1e-12);
  }
  EXPECT_THROW(referenceProfile("token-ring"), Error);
}

}  // namespace
}  // namespace sqz
