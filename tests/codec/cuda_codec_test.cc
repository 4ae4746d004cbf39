// The CUDA codecs against the CPU ones: identical payload bytes, residuals
// and decoded values. Compiled in every build; skipped where no device runs.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "kernels/cuda_codec.h"
#include "tests/codec/codec_test_util.h"

#if defined(SQZ_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace sqz {
namespace {

#if defined(SQZ_HAVE_CUDA)

bool haveDevice() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0 && cudaCodecAvailable();
}

#define SKIP_WITHOUT_GPU() \
  if (!haveDevice()) GTEST_SKIP() << "no CUDA device"

#define CUDA_OK(x) ASSERT_EQ((x), cudaSuccess) << #x

// A device buffer that frees itself.
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    EXPECT_EQ(cudaMalloc(&ptr, std::max<size_t>(count, 1) * sizeof(T)), cudaSuccess);
  }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

std::vector<test::InputCase> gpuInputs() {
  auto in = test::standardInputs();
  in.push_back({"normal1M", test::normalInput((1 << 20) + 3, 12)});
  std::vector<float> ties(300000);
  for (size_t i = 0; i < ties.size(); ++i) ties[i] = static_cast<float>(static_cast<int>(i * 2654435761u % 9) - 4);
  in.push_back({"ties300k", ties});
  return in;
}

class CudaVsCpu : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaVsCpu, SamePayloadResidualAndDecode) {
  SKIP_WITHOUT_GPU();
  const CodecParams p = parseCodecSpec(GetParam());
  for (const auto& in : gpuInputs()) {
    for (bool ef : {false, true}) {
      for (uint64_t offset : {uint64_t{0}, uint64_t{4098}}) {
        const size_t n = in.data.size();
        std::vector<float> e0 = test::normalInput(n, 3, 0.01f);
        std::vector<float> eCpu = e0;
        EncodeArgs a;
        a.input = in.data.data();
        a.count = n;
        a.residual = ef ? eCpu.data() : nullptr;
        a.seed = 0x1234567890ull;
        a.step = 11;
        a.rank = 2;
        a.chunkOffset = offset;
        auto cpu = test::encodeToVector(p, a);

        DeviceBuffer<float> dx(in.data), de(e0);
        DeviceBuffer<uint8_t> dp(cpu.size());
        DeviceBuffer<uint8_t> ws(std::max<size_t>(cudaEncodeWorkspaceBytes(p, n), 1));
        EncodeArgs g = a;
        g.input = dx.ptr;
        g.residual = ef ? de.ptr : nullptr;
        cudaEncode(p, g, dp.ptr, ws.ptr, nullptr);
        CUDA_OK(cudaDeviceSynchronize());
        auto gpu = dp.get();
        ASSERT_EQ(gpu, cpu) << GetParam() << " " << in.name << " ef=" << ef << " offset=" << offset;
        if (ef) {
          ASSERT_EQ(de.get(), eCpu) << GetParam() << " " << in.name;
        }

        // Decode the payload on the device: overwrite and accumulate.
        const DecodeExpect x = test::expectFor(p, a);
        std::vector<float> ref = test::decodeToVector(p, a, cpu);
        std::vector<float> acc(n, 0.5f), accRef = acc;
        decodeCpu(x, cpu.data(), cpu.size(), accRef.data(), DecodeMode::Accumulate);
        DeviceBuffer<float> dout(std::vector<float>(n, 99.0f)), dacc(acc);
        DeviceBuffer<int> err(std::vector<int>{0});
        DeviceBuffer<uint8_t> dws(std::max<size_t>(cudaDecodeWorkspaceBytes(p, n), 1));
        cudaDecode(x, dp.ptr, cpu.size(), dout.ptr, DecodeMode::Overwrite, err.ptr, dws.ptr, nullptr);
        cudaDecode(x, dp.ptr, cpu.size(), dacc.ptr, DecodeMode::Accumulate, err.ptr, dws.ptr, nullptr);
        CUDA_OK(cudaDeviceSynchronize());
        ASSERT_EQ(err.get()[0], 0) << cudaDecodeErrorString(err.get()[0]);
        ASSERT_EQ(dout.get(), ref) << GetParam() << " " << in.name;
        ASSERT_EQ(dacc.get(), accRef) << GetParam() << " " << in.name;
      }
    }
  }
}

// Every codec of the CPU tests, and sign:rot with a block too large for the
// rotation in shared memory (the kernels then rotate in a global scratch).
std::vector<std::string> cudaCodecSpecs() {
  std::vector<std::string> specs = test::allCodecSpecs();
  specs.push_back("sign:block=16384:rot");
  return specs;
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CudaVsCpu, ::testing::ValuesIn(cudaCodecSpecs()), [](const auto& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
});

TEST(CudaCodec, HalfInputsMatchCpu) {
  SKIP_WITHOUT_GPU();
  std::vector<float> x = test::heavyTailedInput(5000, 4);
  for (sqzDataType_t t : {sqzFloat16, sqzBfloat16}) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = t == sqzFloat16 ? floatToFp16(x[i]) : floatToBf16(x[i]);
    for (const char* spec : {"q4", "q8:rn", "bf16", "topk:0.01", "sign", "sign:rot"}) {
      const CodecParams p = parseCodecSpec(spec);
      std::vector<float> e(x.size(), 0.001f), eg = e;
      EncodeArgs a;
      a.input = h.data();
      a.dtype = t;
      a.count = x.size();
      a.residual = e.data();
      a.seed = 3;
      auto cpu = test::encodeToVector(p, a);
      DeviceBuffer<uint16_t> dh(h);
      DeviceBuffer<float> de(eg);
      DeviceBuffer<uint8_t> dp(cpu.size()), ws(std::max<size_t>(cudaEncodeWorkspaceBytes(p, x.size()), 1));
      EncodeArgs g = a;
      g.input = dh.ptr;
      g.residual = de.ptr;
      cudaEncode(p, g, dp.ptr, ws.ptr, nullptr);
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(dp.get(), cpu) << spec << " dtype " << t;
      EXPECT_EQ(de.get(), e) << spec;
    }
  }
}

TEST(CudaCodec, StatisticsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (const auto& in : gpuInputs()) {
    std::vector<float> x = in.data;
    if (x.size() > 10) x[7] = NAN;
    std::vector<float> e = test::normalInput(x.size(), 5, 0.1f);
    GradStats cpu;
    clearStats(&cpu);
    gradStatsCpu(x.data(), sqzFloat32, e.data(), x.size(), &cpu);
    DeviceBuffer<float> dx(x), de(e);
    DeviceBuffer<GradStats> ds(std::vector<GradStats>(1));
    CUDA_OK(cudaMemset(ds.ptr, 0, sizeof(GradStats)));
    cudaGradStats(dx.ptr, sqzFloat32, de.ptr, x.size(), ds.ptr, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    GradStats gpu = ds.get()[0];
    EXPECT_EQ(gpu.elements, cpu.elements) << in.name;
    EXPECT_EQ(gpu.nonFinite, cpu.nonFinite) << in.name;
    EXPECT_EQ(gpu.quantBlocks, cpu.quantBlocks) << in.name;
    EXPECT_NEAR(gpu.sumSq, cpu.sumSq, 1e-5 * cpu.sumSq) << in.name;
    for (int w = 0; w < GradStats::kQuantWidths; ++w)
      EXPECT_NEAR(gpu.quantVar[w], cpu.quantVar[w], 1e-5 * cpu.quantVar[w]) << in.name;
    EXPECT_NEAR(gpu.signKept, cpu.signKept, 1e-5 * std::fabs(cpu.signKept)) << in.name;
    EXPECT_NEAR(gpu.signRotCommon, cpu.signRotCommon, 1e-5 * cpu.signRotCommon + 1e-30) << in.name;
    EXPECT_NEAR(gpu.signRotError, cpu.signRotError, 1e-5 * cpu.signRotError + 1e-30) << in.name;
    for (int b = 0; b < GradStats::kBins; ++b) {
      ASSERT_EQ(gpu.binCount[b], cpu.binCount[b]) << in.name << " bin " << b;
      ASSERT_NEAR(gpu.binSumSq[b], cpu.binSumSq[b], 1e-5 * cpu.binSumSq[b] + 1e-30) << in.name;
    }
  }
}

TEST(CudaCodec, MalformedPayloadSetsTheErrorAndWritesNothing) {
  SKIP_WITHOUT_GPU();
  const CodecParams p = parseCodecSpec("topk:0.1");
  std::vector<float> x = test::normalInput(1000, 1);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  auto payload = test::encodeToVector(p, a);
  DecodeExpect ex = test::expectFor(p, a);
  auto run = [&](std::vector<uint8_t> bytes, const DecodeExpect& xx, size_t size) {
    DeviceBuffer<uint8_t> dp(bytes);
    DeviceBuffer<float> out(std::vector<float>(x.size(), -7.0f));
    DeviceBuffer<int> err(std::vector<int>{0});
    DeviceBuffer<uint8_t> ws(std::max<size_t>(cudaDecodeWorkspaceBytes(xx.params, xx.count), 1));
    cudaDecode(xx, dp.ptr, size, out.ptr, DecodeMode::Accumulate, err.ptr, ws.ptr, nullptr);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    return std::make_pair(err.get()[0], out.get());
  };
  auto bad = payload;
  bad[0] ^= 1;
  auto [e1, o1] = run(bad, ex, bad.size());
  EXPECT_NE(e1, 0);
  EXPECT_EQ(o1, std::vector<float>(x.size(), -7.0f));
  auto [e2, o2] = run(payload, ex, payload.size() - 16);
  EXPECT_NE(e2, 0);
  EXPECT_EQ(o2, std::vector<float>(x.size(), -7.0f));
  // A bad index anywhere (out of range, or a duplicate, first or last)
  // rejects the payload before any element is written, as on the CPU.
  const PayloadLayout l = payloadLayout(p, x.size(), false);
  std::vector<uint32_t> idx(l.selected);
  std::memcpy(idx.data(), payload.data() + l.params, idx.size() * 4);
  for (auto [at, value] : {std::make_pair(size_t{2}, uint32_t{5000}), std::make_pair(l.selected - 1, uint32_t{5000}),
                           std::make_pair(size_t{1}, idx[0]), std::make_pair(l.selected - 1, idx[l.selected - 2])}) {
    bad = payload;
    std::memcpy(bad.data() + l.params + 4 * at, &value, 4);
    auto [e3, o3] = run(bad, ex, bad.size());
    EXPECT_EQ(e3, 3) << "index " << value << " at " << at;  // kBadIndex
    EXPECT_EQ(o3, std::vector<float>(x.size(), -7.0f)) << "index " << value << " at " << at;
  }
  // The same for a quantized payload with one bad block scale (the last).
  const CodecParams q = parseCodecSpec("q4");
  auto qpayload = test::encodeToVector(q, a);
  const PayloadLayout ql = payloadLayout(q, x.size(), false);
  const float nan = NAN;
  std::memcpy(qpayload.data() + ql.params + 8 * (ql.blocks - 1) + 4, &nan, 4);
  auto [e4, o4] = run(qpayload, test::expectFor(q, a), qpayload.size());
  EXPECT_EQ(e4, 2);  // kBadBlockScale
  EXPECT_EQ(o4, std::vector<float>(x.size(), -7.0f));
  // And for sign:rot (its blocks are rotated back whole: none may start).
  for (const char* spec : {"sign:rot", "sign:block=16384:rot"}) {
    const CodecParams r = parseCodecSpec(spec);
    auto rpayload = test::encodeToVector(r, a);
    const PayloadLayout rl = payloadLayout(r, x.size(), false);
    const float negative = -1.0f;
    std::memcpy(rpayload.data() + rl.params + 4 * (rl.blocks - 1), &negative, 4);
    auto [e5, o5] = run(rpayload, test::expectFor(r, a), rpayload.size());
    EXPECT_EQ(e5, 2) << spec;  // kBadBlockScale
    EXPECT_EQ(o5, std::vector<float>(x.size(), -7.0f)) << spec;
  }
}

// An empty chunk's sign:rot payload still carries its call's key, as the
// CPU's does (the header kernel writes it).
TEST(CudaCodec, RotatedSignEmptyChunkMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const CodecParams p = parseCodecSpec("sign:rot");
  EncodeArgs a;
  a.input = nullptr;
  a.count = 0;
  a.seed = 9;
  a.step = 4;
  a.rank = 1;
  auto cpu = test::encodeToVector(p, a);
  DeviceBuffer<uint8_t> dp(std::vector<uint8_t>(cpu.size(), 0xab));
  cudaEncode(p, a, dp.ptr, nullptr, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(dp.get(), cpu);
}

// sign:rot blocks beyond shared memory rotate back in the caller's
// workspace: decoding without one is the caller's error, reported before
// anything runs, not an allocation on the hot path.
TEST(CudaCodec, RotatedSignDecodeNeedsItsWorkspace) {
  EXPECT_EQ(cudaDecodeWorkspaceBytes(parseCodecSpec("sign:rot"), 100000), 0u);
  EXPECT_EQ(cudaDecodeWorkspaceBytes(parseCodecSpec("q4"), 100000), 0u);
  SKIP_WITHOUT_GPU();
  EXPECT_EQ(cudaDecodeWorkspaceBytes(parseCodecSpec("sign:block=16384:rot"), 1000), 4096u);  // 4000, 256-aligned
  const CodecParams p = parseCodecSpec("sign:block=16384:rot");
  std::vector<float> x = test::normalInput(1000, 5);
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  auto payload = test::encodeToVector(p, a);
  DeviceBuffer<uint8_t> dp(payload);
  DeviceBuffer<float> out(std::vector<float>(x.size(), -7.0f));
  DeviceBuffer<int> err(std::vector<int>{0});
  try {
    cudaDecode(test::expectFor(p, a), dp.ptr, payload.size(), out.ptr, DecodeMode::Overwrite, err.ptr, nullptr,
               nullptr);
    ADD_FAILURE() << "decoded without the workspace it needs";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sqzInvalidUsage);
    EXPECT_NE(std::string(e.what()).find("workspace"), std::string::npos) << e.what();
  }
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(out.get(), std::vector<float>(x.size(), -7.0f));
}

TEST(CudaCodec, RandKGatherScatterMatchCpu) {
  SKIP_WITHOUT_GPU();
  const CodecParams p = parseCodecSpec("randk:0.1:rescale");
  std::vector<float> x = test::normalInput(100003, 2), e(x.size(), 0.25f), eg = e;
  EncodeArgs a;
  a.input = x.data();
  a.count = x.size();
  a.residual = e.data();
  a.seed = 5;
  a.step = 6;
  a.chunkOffset = 77;
  std::vector<float> v(selectedCount(p, x.size()));
  randkGatherCpu(p, a, v.data());
  DeviceBuffer<float> dx(x), de(eg), dv(v.size());
  EncodeArgs g = a;
  g.input = dx.ptr;
  g.residual = de.ptr;
  cudaRandkGather(p, g, dv.ptr, nullptr);
  std::vector<float> out(x.size(), 1.0f);
  DeviceBuffer<float> dout(out);
  cudaRandkScatter(p, x.size(), 5, 6, 77, dv.ptr, dout.ptr, DecodeMode::Accumulate, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(dv.get(), v);
  EXPECT_EQ(de.get(), e);
  randkScatterCpu(p, x.size(), 5, 6, 77, v.data(), out.data(), DecodeMode::Accumulate);
  EXPECT_EQ(dout.get(), out);
}

#else

TEST(CudaCodec, NotBuilt) { GTEST_SKIP() << "built without CUDA"; }

#endif

}  // namespace
}  // namespace sqz
