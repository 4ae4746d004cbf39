// sqz_train_bench: data-parallel SGD on Fashion-MNIST (issue 7). Every rank
// holds a shard of the training set, computes the gradient of its minibatch
// and averages it over the ranks with sqzAllReduceEx (one sqzState_t per
// parameter tensor) or, for the baseline, MPI_Allreduce + divide. Methods run
// one after another in the same process, each from the same initial weights
// and with the same data order, so their curves differ only by what the
// allreduce did.
//
//   mpirun -np 4 sqz_train_bench --model logreg|mlp [--methods none,mpi,q4,auto,...]
//          [--steps N] [--batch B] [--eval-every E] [--eval-seconds S] [--max-seconds S]
//          [--schedule cosine|const] [--out file.csv]
//          [--link NAME] [--lr X] [--momentum X] [--seed S] [--hidden H]
//          [--train-n N] [--test-n N] [--data DIR] [--min-bytes B] [--tune SQZ_TUNE]
//          [--capture DIR] [--capture-steps S,S,...] [--drain-bytes B]
//
// Models: multinomial logistic regression (784x10 + bias) and an MLP
// 784-H-H-10 (ReLU, softmax cross-entropy; H = 1024 by default), fp32,
// forward and backward written out below. Loops are ordered so that each
// weight row is read once per step and the inner loops are contiguous
// (vectorizable) axpys and dots; zero inputs (blank pixels, inactive ReLUs)
// are skipped.
//
// SGD with momentum (v = mu v + g; w -= lr_t v), lr_t cosine-decayed from
// --lr at step 1 to 0 at --steps (the default; --schedule const keeps it).
// A method capped by --max-seconds stops early on the same schedule.
//
// Data order: epoch e's permutation of the training set comes from
// (seed, e); rank r takes positions r, r+N, r+2N, ... (a DistributedSampler
// shard) and consumes them in batches of B, so global step t trains on the
// same B*N images for every method.
//
// Measured per evaluation point (CSV, one row per method and point):
// training loss (mean of the minibatch losses since the previous point, over
// all ranks), test loss and accuracy (the first --test-n test images, sharded
// over the ranks; all 10000 by default), cumulative bytes sent per rank (sqz:
// sqzCallInfo.wireBytes summed over calls and averaged over ranks; mpi: the
// ring formula 2(N-1)/N * bytes per tensor, which is not measured), wall time
// of the training loop (compute + communication, evaluation excluded; the
// slowest rank), and the plans that ran (counts over all calls so far).
//
// --capture DIR (issue 10: real gradients for perf/descent/sqz_descent_bench
// -g DIR): while method `none` (exact allreduce) trains, each rank writes its
// own minibatch gradient, before the allreduce, flattened over the tensors in
// model order (W1, b1, W2, b2, ...), as raw little-endian float32 to
// DIR/rank<R>_step<S>.f32 at the steps of --capture-steps (default
// 1,3,10,30,60,120,240,468: log-spaced over the first epoch at 4 ranks x
// batch 32, since early gradients differ most); rank 0 writes DIR/index.txt
// (element count, tensors, steps, the command's settings). Nothing is
// captured for the other methods.
//
// --drain-bytes B: after every evaluation, untimed, each rank sends B bytes
// or more before training resumes: an exact sqz allreduce of B bytes (MPI
// around a ring for the mpi method), so that auto, which credits a link
// with what its idle time refilled, sees the link busy as it is. A link
// with a token-bucket shaper (the testbed's tc tbf, a cloud NIC's
// allowance) refills its bucket while the ranks evaluate, and the calls
// after an evaluation ride that credit: with an evaluation every 20 steps
// and a 256 KB bucket, 12.8 KB a step go free, which a job that evaluates
// once an epoch never sees. Draining at least the bucket's size starts
// every stretch of training with an empty bucket, as in the steady state
// of a step loop that sends more than the rate refills.
//
// --drain-via mpi: the drain goes as MPI's own messages whatever the
// method, as other traffic on the links between two calls would (another
// job, data loading): the bucket is empty, yet sqz sees the link idle since
// its last call, so it is the case the tuner's credit check must catch.
#include <mpi.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sqz.h"

namespace {

// ---- small utilities ---------------------------------------------------------

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [-1, 1), from the top 24 bits (exactly representable).
float uniformPm1(uint64_t& s) {
  return static_cast<float>(static_cast<double>(splitmix(s) >> 40) / 8388608.0 - 1.0);
}

[[noreturn]] void die(const char* fmt, const char* a = "", const char* b = "") {
  std::fprintf(stderr, "sqz_train_bench: ");
  std::fprintf(stderr, fmt, a, b);
  std::fprintf(stderr, "\n");
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::exit(2);
}

// ---- data --------------------------------------------------------------------

struct Dataset {
  int n = 0;
  static constexpr int kDim = 784;
  std::vector<uint8_t> pixels;  // n x 784
  std::vector<uint8_t> labels;  // n
};

std::vector<uint8_t> readGz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) die("cannot open %s (Debian package dataset-fashion-mnist)", path.c_str());
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    int got = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (got < 0) die("read error in %s", path.c_str());
    if (got == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + got);
  }
  gzclose(f);
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t off) {
  return (uint32_t(b[off]) << 24) | (uint32_t(b[off + 1]) << 16) | (uint32_t(b[off + 2]) << 8) | uint32_t(b[off + 3]);
}

Dataset loadIdx(const std::string& images, const std::string& labels, int limit) {
  std::vector<uint8_t> im = readGz(images), lb = readGz(labels);
  if (im.size() < 16 || be32(im, 0) != 0x00000803 || lb.size() < 8 || be32(lb, 0) != 0x00000801)
    die("%s / %s: not IDX image/label files", images.c_str(), labels.c_str());
  uint32_t n = be32(im, 4);
  if (be32(im, 8) != 28 || be32(im, 12) != 28 || be32(lb, 4) != n || im.size() < 16 + size_t(n) * 784 ||
      lb.size() < 8 + size_t(n))
    die("%s / %s: unexpected sizes", images.c_str(), labels.c_str());
  Dataset d;
  d.n = static_cast<int>(limit > 0 ? std::min<uint32_t>(n, static_cast<uint32_t>(limit)) : n);
  d.pixels.assign(im.begin() + 16, im.begin() + 16 + size_t(d.n) * 784);
  d.labels.assign(lb.begin() + 8, lb.begin() + 8 + d.n);
  for (uint8_t y : d.labels)
    if (y > 9) die("%s: label out of range", labels.c_str());
  return d;
}

void toFloat(const Dataset& d, const int* idx, int count, float* x, int* y) {
  for (int b = 0; b < count; ++b) {
    const uint8_t* p = &d.pixels[size_t(idx[b]) * Dataset::kDim];
    for (int i = 0; i < Dataset::kDim; ++i) x[size_t(b) * Dataset::kDim + i] = p[i] * (1.0f / 255.0f);
    y[b] = d.labels[idx[b]];
  }
}

// ---- model -------------------------------------------------------------------

// out[b, :] += a * w[:] over a contiguous row.
inline void axpy(float* __restrict out, const float* __restrict w, float a, int n) {
  for (int o = 0; o < n; ++o) out[o] += a * w[o];
}

// Dot product with 16 independent partial sums (vectorizes without
// reassociation flags); the summation order is fixed, so results are
// reproducible.
inline float dot(const float* __restrict a, const float* __restrict b, int n) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  float s = 0;
  for (int l = 0; l < 16; ++l) s += acc[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// A fully connected layer y = x W + b, W stored [in][out] row-major.
struct Dense {
  int in, out;
  int w, b;  // indices of the weight and bias tensors in Model::params
};

struct Model {
  std::vector<std::vector<float>> params, grads, velocity;
  std::vector<std::string> names;
  std::vector<Dense> layers;

  int addTensor(const std::string& name, size_t n) {
    params.emplace_back(n, 0.0f);
    grads.emplace_back(n, 0.0f);
    velocity.emplace_back(n, 0.0f);
    names.push_back(name);
    return static_cast<int>(params.size()) - 1;
  }
  size_t numParams() const {
    size_t s = 0;
    for (const auto& p : params) s += p.size();
    return s;
  }
};

// logreg: sizes {784, 10}; mlp: {784, H, H, 10}. Weights: uniform with He
// variance (2 / fan_in) for ReLU layers, zero for logistic regression (convex:
// the start does not matter); biases zero. Deterministic from the seed.
Model makeModel(const std::vector<int>& sizes, uint64_t seed) {
  Model m;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    Dense d{sizes[l], sizes[l + 1], 0, 0};
    d.w = m.addTensor("W" + std::to_string(l + 1), size_t(d.in) * d.out);
    d.b = m.addTensor("b" + std::to_string(l + 1), size_t(d.out));
    if (sizes.size() > 2) {
      uint64_t s = seed * 1000003ull + l;
      const float scale = std::sqrt(6.0f / d.in);  // uniform(-a, a), a^2/3 = 2/in
      for (float& v : m.params[d.w]) v = scale * uniformPm1(s);
    }
    m.layers.push_back(d);
  }
  return m;
}

struct Workspace {
  std::vector<std::vector<float>> acts;  // acts[0] = input, acts[l+1] = output of layer l (post-ReLU)
  std::vector<std::vector<float>> deltas;
};

// AVX2+FMA clone where the CPU has it (picked at load time), portable otherwise.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SQZ_TRAIN_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SQZ_TRAIN_CLONES
#endif

// Forward pass over `batch` rows of x. Returns the summed cross-entropy and
// writes the number of correct predictions; with `backward`, also fills
// m.grads with the gradient of the *mean* loss over the batch.
SQZ_TRAIN_CLONES double forwardBackward(Model& m, Workspace& ws, const float* x, const int* y, int batch, bool backward,
                       int* correct) {
  const int L = static_cast<int>(m.layers.size());
  ws.acts.resize(L + 1);
  ws.deltas.resize(L + 1);
  ws.acts[0].assign(x, x + size_t(batch) * m.layers[0].in);
  for (int l = 0; l < L; ++l) {
    const Dense& d = m.layers[l];
    const float* in = ws.acts[l].data();
    std::vector<float>& out = ws.acts[l + 1];
    out.resize(size_t(batch) * d.out);
    const float* W = m.params[d.w].data();
    const float* bias = m.params[d.b].data();
    for (int b = 0; b < batch; ++b) std::memcpy(&out[size_t(b) * d.out], bias, sizeof(float) * d.out);
    for (int i = 0; i < d.in; ++i) {
      const float* wrow = W + size_t(i) * d.out;
      for (int b = 0; b < batch; ++b) {
        const float a = in[size_t(b) * d.in + i];
        if (a != 0.0f) axpy(&out[size_t(b) * d.out], wrow, a, d.out);
      }
    }
    if (l + 1 < L)
      for (float& v : out) v = v > 0.0f ? v : 0.0f;
  }
  // Softmax cross-entropy on the logits; delta = (p - onehot) / batch.
  const int C = m.layers[L - 1].out;
  std::vector<float>& logits = ws.acts[L];
  std::vector<float>& delta = ws.deltas[L];
  delta.resize(size_t(batch) * C);
  double loss = 0;
  int right = 0;
  for (int b = 0; b < batch; ++b) {
    const float* z = &logits[size_t(b) * C];
    int arg = 0;
    for (int c = 1; c < C; ++c)
      if (z[c] > z[arg]) arg = c;
    right += arg == y[b];
    double sum = 0;
    for (int c = 0; c < C; ++c) sum += std::exp(static_cast<double>(z[c] - z[arg]));
    loss += std::log(sum) - (z[y[b]] - z[arg]);
    for (int c = 0; c < C; ++c) {
      const double p = std::exp(static_cast<double>(z[c] - z[arg])) / sum;
      delta[size_t(b) * C + c] = static_cast<float>((p - (c == y[b] ? 1.0 : 0.0)) / batch);
    }
  }
  if (correct) *correct = right;
  if (!backward) return loss;
  for (int l = L - 1; l >= 0; --l) {
    const Dense& d = m.layers[l];
    const float* in = ws.acts[l].data();
    const float* dout = ws.deltas[l + 1].data();
    const float* W = m.params[d.w].data();
    float* dW = m.grads[d.w].data();
    float* db = m.grads[d.b].data();
    std::fill(db, db + d.out, 0.0f);
    for (int b = 0; b < batch; ++b) axpy(db, dout + size_t(b) * d.out, 1.0f, d.out);
    const bool needIn = l > 0;
    std::vector<float>& din = ws.deltas[l];
    if (needIn) din.assign(size_t(batch) * d.in, 0.0f);
    for (int i = 0; i < d.in; ++i) {
      float* dwrow = dW + size_t(i) * d.out;
      std::fill(dwrow, dwrow + d.out, 0.0f);
      const float* wrow = W + size_t(i) * d.out;
      for (int b = 0; b < batch; ++b) {
        const float a = in[size_t(b) * d.in + i];
        if (a == 0.0f) continue;  // input 0: no weight gradient; ReLU'(0) = 0: no input gradient
        axpy(dwrow, dout + size_t(b) * d.out, a, d.out);
        if (needIn) din[size_t(b) * d.in + i] = dot(wrow, dout + size_t(b) * d.out, d.out);
      }
    }
  }
  return loss;
}

// ---- options -----------------------------------------------------------------

struct Options {
  std::string model = "logreg";
  std::string methods = "none,mpi,bf16,q8,q4,q2,q1,topk:0.1,topk:0.01,topk:0.001,randk:0.01,auto";
  int steps = 300, batch = 32, evalEvery = 25, hidden = 1024;
  double maxSeconds = 0;   // per method: stop once the training loop has run this long; 0: no cap
  double evalSeconds = 0;  // also evaluate after this much training time since the last point; 0: off
  std::string schedule = "cosine";
  double lr = -1, momentum = 0.9;
  uint64_t seed = 1;
  int trainN = 0, testN = 0;  // 0: all
  long minBytes = 4096;
  std::string tune;  // SQZ_TUNE for this run (empty: the library's table)
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string out, link = "unknown";
  std::string captureDir;                                   // --capture: empty = off
  std::string captureSteps = "1,3,10,30,60,120,240,468";  // --capture-steps
  long drainBytes = 0;                                      // --drain-bytes: 0 = off
  bool drainViaMpi = false;                                 // --drain-via mpi
};

void usage() {
  std::fprintf(stderr,
               "usage: sqz_train_bench --model logreg|mlp [--methods a,b,...] [--steps N] [--batch B]\n"
               "  [--eval-every E] [--eval-seconds S] [--max-seconds S] [--schedule cosine|const] [--out FILE.csv] [--link NAME] [--lr X] [--momentum X]\n"
               "  [--seed S] [--hidden H] [--train-n N] [--test-n N] [--data DIR] [--min-bytes B] [--tune SQZ_TUNE]\n"
               "  [--capture DIR] [--capture-steps S,S,...]   (method none: each rank's gradient -> DIR/rank<R>_step<S>.f32)\n"
               "  [--drain-bytes B]   (after each evaluation, untimed: an exact allreduce of B bytes, emptying a shaper's bucket)\n"
               "  [--drain-via method|mpi]   (mpi: the drain as MPI messages, traffic sqz does not see)\n");
}

Options parseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die("%s needs a value", a.c_str());
      return argv[++i];
    };
    if (a == "--model") o.model = val();
    else if (a == "--methods") o.methods = val();
    else if (a == "--steps") o.steps = std::atoi(val().c_str());
    else if (a == "--batch") o.batch = std::atoi(val().c_str());
    else if (a == "--eval-every") o.evalEvery = std::atoi(val().c_str());
    else if (a == "--max-seconds") o.maxSeconds = std::atof(val().c_str());
    else if (a == "--eval-seconds") o.evalSeconds = std::atof(val().c_str());
    else if (a == "--schedule") o.schedule = val();
    else if (a == "--lr") o.lr = std::atof(val().c_str());
    else if (a == "--momentum") o.momentum = std::atof(val().c_str());
    else if (a == "--seed") o.seed = std::strtoull(val().c_str(), nullptr, 10);
    else if (a == "--hidden") o.hidden = std::atoi(val().c_str());
    else if (a == "--train-n") o.trainN = std::atoi(val().c_str());
    else if (a == "--test-n") o.testN = std::atoi(val().c_str());
    else if (a == "--data") o.data = val();
    else if (a == "--min-bytes") o.minBytes = std::atol(val().c_str());
    else if (a == "--tune") o.tune = val();
    else if (a == "--out") o.out = val();
    else if (a == "--link") o.link = val();
    else if (a == "--capture") o.captureDir = val();
    else if (a == "--capture-steps") o.captureSteps = val();
    else if (a == "--drain-bytes") o.drainBytes = std::atol(val().c_str());
    else if (a == "--drain-via") {
      const std::string v = val();
      if (v != "method" && v != "mpi") die("--drain-via %s: method or mpi", v.c_str());
      o.drainViaMpi = v == "mpi";
    }
    else if (a == "-h" || a == "--help") {
      usage();
      MPI_Finalize();
      std::exit(0);
    } else {
      usage();
      die("unknown argument %s", a.c_str());
    }
  }
  if (o.model != "logreg" && o.model != "mlp") die("--model %s: logreg or mlp", o.model.c_str());
  if (o.steps < 1 || o.batch < 1 || o.evalEvery < 1 || o.hidden < 1) die("--steps, --batch, --eval-every, --hidden must be >= 1");
  if (o.schedule != "cosine" && o.schedule != "const") die("--schedule %s: cosine or const", o.schedule.c_str());
  if (o.drainBytes < 0) die("--drain-bytes must be >= 0");
  if (o.lr < 0) o.lr = o.model == "logreg" ? 0.1 : 0.05;
  return o;
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> v;
  for (size_t pos = 0; pos <= s.size();) {
    size_t c = s.find(',', pos);
    if (c == std::string::npos) c = s.size();
    if (c > pos) v.push_back(s.substr(pos, c - pos));
    pos = c + 1;
  }
  return v;
}

// FNV-1a over the bytes of every parameter: equal hashes = bitwise-equal models.
uint64_t paramHash(const Model& m) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& p : m.params) {
    const unsigned char* c = reinterpret_cast<const unsigned char*>(p.data());
    for (size_t i = 0; i < p.size() * sizeof(float); ++i) h = (h ^ c[i]) * 1099511628211ull;
  }
  return h;
}

// --drain-bytes: `bytes` through the method's own path, then a barrier
// (every rank's link is drained before any trains). Through sqz, an exact
// allreduce (a ring sends 2 (N - 1) / N of it a rank): its end is what
// the tuner's idle time counts from, as after any call, where MPI traffic
// would leave it counting the drain as idle time that refilled the link.
void drainLinks(long bytes, int rank, int nranks, sqzComm_t comm, bool viaMpi) {
  if (bytes <= 0 || nranks < 2) return;
  if (!viaMpi) {
    std::vector<float> buf(static_cast<size_t>(bytes) / sizeof(float), 1.0f);
    if (sqzAllReduceEx(buf.data(), buf.data(), buf.size(), sqzFloat32, sqzSum, "none", nullptr, comm, nullptr) !=
        sqzSuccess)
      die("drain: sqzAllReduceEx: %s", sqzGetLastError(comm));
    MPI_Barrier(MPI_COMM_WORLD);
    return;
  }
  constexpr int kMessage = 64 << 10;
  std::vector<char> out(kMessage, 1), in(kMessage);
  const int next = (rank + 1) % nranks, prev = (rank + nranks - 1) % nranks;
  for (long sent = 0; sent < bytes; sent += kMessage)
    MPI_Sendrecv(out.data(), kMessage, MPI_CHAR, next, 7, in.data(), kMessage, MPI_CHAR, prev, 7, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  const Options opt = parseArgs(argc, argv);
  // Buffers below SQZ_MIN_BYTES always take the exact path; the library's
  // default (64 KiB) would leave the whole logistic regression (31 KiB)
  // uncompressed, so the benchmark lowers it (biases of 10 floats stay exact).
  setenv("SQZ_MIN_BYTES", std::to_string(opt.minBytes).c_str(), 1);
  // The library's static table sends every buffer below 64 KiB exactly,
  // whatever auto would pick; --tune replaces it (e.g. to let auto decide
  // from 4 KiB up, as SQZ_MIN_BYTES lets the fixed specs).
  if (!opt.tune.empty()) setenv("SQZ_TUNE", opt.tune.c_str(), 1);

  Dataset train = loadIdx(opt.data + "/train-images-idx3-ubyte.gz", opt.data + "/train-labels-idx1-ubyte.gz", opt.trainN);
  Dataset test = loadIdx(opt.data + "/t10k-images-idx3-ubyte.gz", opt.data + "/t10k-labels-idx1-ubyte.gz", opt.testN);

  sqzUniqueId id;
  if (rank == 0 && sqzGetUniqueId(&id) != sqzSuccess) die("sqzGetUniqueId: %s", sqzGetLastError(nullptr));
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  sqzComm_t comm;
  if (sqzCommInitRank(&comm, nranks, id, rank) != sqzSuccess) die("sqzCommInitRank: %s", sqzGetLastError(nullptr));

  const std::vector<int> sizes =
      opt.model == "logreg" ? std::vector<int>{784, 10} : std::vector<int>{784, opt.hidden, opt.hidden, 10};
  const std::vector<std::string> methods = splitList(opt.methods);
  const int shard = train.n / nranks;  // images per rank per epoch
  const int stepsPerEpoch = shard / opt.batch;
  if (stepsPerEpoch < 1) die("--batch larger than the shard (%s images per rank)", std::to_string(shard).c_str());

  // --capture: the steps to write, the directory, and the index (rank 0).
  std::set<int> captureAt;
  if (!opt.captureDir.empty()) {
    const uint16_t probeEndian = 1;
    if (*reinterpret_cast<const uint8_t*>(&probeEndian) != 1) die("--capture writes little-endian float32: big-endian host");
    if (std::find(methods.begin(), methods.end(), "none") == methods.end())
      die("--capture records the gradients of method none (exact allreduce): add it to --methods");
    for (const std::string& s : splitList(opt.captureSteps)) {
      const int st = std::atoi(s.c_str());
      if (st < 1) die("--capture-steps: %s is not a step >= 1", s.c_str());
      if (st <= opt.steps) captureAt.insert(st);
    }
    if (captureAt.empty()) die("--capture-steps: no step within --steps");
    if (mkdir(opt.captureDir.c_str(), 0755) != 0 && errno != EEXIST) die("cannot create %s", opt.captureDir.c_str());
    if (rank == 0) {
      const std::string path = opt.captureDir + "/index.txt";
      FILE* f = std::fopen(path.c_str(), "w");
      if (!f) die("cannot write %s", path.c_str());
      Model probe = makeModel(sizes, opt.seed);
      std::fprintf(f, "# sqz_train_bench --capture: each rank's minibatch gradient (before the allreduce), method none\n");
      std::fprintf(f, "format rank<R>_step<S>.f32, raw little-endian float32, one file per rank and step\n");
      std::fprintf(f, "elements %zu\n", probe.numParams());
      std::fprintf(f, "tensors");
      for (size_t t = 0; t < probe.params.size(); ++t) std::fprintf(f, " %s:%zu", probe.names[t].c_str(), probe.params[t].size());
      std::fprintf(f, "\nranks %d\nsteps", nranks);
      for (int st : captureAt) std::fprintf(f, " %d", st);
      std::fprintf(f, "\nsettings model %s hidden %d batch_per_rank %d lr %g momentum %g schedule %s steps %d seed %llu "
                   "train_n %d steps_per_epoch %d\n",
                   opt.model.c_str(), opt.hidden, opt.batch, opt.lr, opt.momentum, opt.schedule.c_str(), opt.steps,
                   static_cast<unsigned long long>(opt.seed), train.n, stepsPerEpoch);
      std::fclose(f);
    }
  }

  FILE* csv = nullptr;
  if (rank == 0) {
    csv = opt.out.empty() ? stdout : std::fopen(opt.out.c_str(), "w");
    if (!csv) die("cannot write %s", opt.out.c_str());
    std::fprintf(csv,
                 "link,model,method,nranks,batch_per_rank,lr,momentum,seed,steps_planned,step,epoch,train_loss,test_loss,test_acc,"
                 "bytes_per_rank,wall_s,comm_s,compute_s,setup_s,param_hash,plans\n");
    std::fflush(csv);
    Model probe = makeModel(sizes, opt.seed);
    std::fprintf(stderr,
                 "# sqz_train_bench: %s (%zu parameters in %zu tensors), %d ranks x batch %d, %d train images "
                 "(%d steps/epoch), %d test images, lr %g momentum %g seed %llu, steps %d, eval every %d, "
                 "max %g s per method, SQZ_MIN_BYTES=%ld, SQZ_TUNE=%s\n",
                 opt.model.c_str(), probe.numParams(), probe.params.size(), nranks, opt.batch, train.n, stepsPerEpoch,
                 test.n, opt.lr, opt.momentum, static_cast<unsigned long long>(opt.seed), opt.steps, opt.evalEvery,
                 opt.maxSeconds, opt.minBytes, getenv("SQZ_TUNE") ? getenv("SQZ_TUNE") : "(default)");
  }

  // Warm the connections (untimed) so that no method pays for them.
  {
    std::vector<float> w(1 << 16, 1.0f);
    sqzAllReduceEx(w.data(), w.data(), w.size(), sqzFloat32, sqzSum, "none", nullptr, comm, nullptr);
    MPI_Allreduce(MPI_IN_PLACE, w.data(), static_cast<int>(w.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }

  std::vector<float> xb(size_t(opt.batch) * Dataset::kDim);
  std::vector<int> yb(opt.batch);
  std::vector<int> perm(train.n), local(shard);
  Workspace ws;
  bool autoCalibrated = false;
  int failures = 0;

  for (const std::string& method : methods) {
    const bool isMpi = method == "mpi";
    Model m = makeModel(sizes, opt.seed);
    std::vector<sqzState_t> states(m.params.size(), nullptr);
    std::vector<std::vector<float>> reduced(m.params.size());
    for (size_t t = 0; t < m.params.size(); ++t) {
      reduced[t].resize(m.params[t].size());
      if (!isMpi && sqzStateCreate(comm, m.params[t].size(), sqzFloat32, &states[t]) != sqzSuccess)
        die("sqzStateCreate: %s", sqzGetLastError(comm));
    }
    // auto calibrates the link on the communicator's first auto call; do it
    // here, untimed, and report how long it took (setup_s).
    double setup = 0;
    if (method == "auto" && !autoCalibrated) {
      sqzState_t st;
      size_t n = m.params[0].size();
      std::vector<float> g(n, 0.0f);
      uint64_t s = 77;
      for (float& v : g) v = uniformPm1(s);
      sqzStateCreate(comm, n, sqzFloat32, &st);
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = now();
      if (sqzAllReduceEx(g.data(), g.data(), n, sqzFloat32, sqzAvg, "auto", st, comm, nullptr) != sqzSuccess)
        die("auto warm-up: %s", sqzGetLastError(comm));
      setup = now() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &setup, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      sqzStateDestroy(st);
      autoCalibrated = true;
    }

    auto lrAt = [&](int step) {
      if (opt.schedule == "const") return opt.lr;
      return opt.lr * 0.5 * (1.0 + std::cos(M_PI * (step - 1) / opt.steps));
    };
    double bytes = 0, comm_s = 0, compute_s = 0, lossSum = 0, lastEvalWall = 0;
    int lossCount = 0, currentEpoch = -1;
    double captureSeconds = 0;  // --capture's file writes in this step (not training time)
    std::map<std::string, long> plans;
    MPI_Barrier(MPI_COMM_WORLD);

    auto evaluate = [&](int step) -> bool {
      // Test set sharded over ranks: rank r takes images r, r+N, ...
      double sums[3] = {0, 0, 0};  // loss, correct, count
      const int chunk = 64;
      std::vector<int> idx;
      for (int i = rank; i < test.n; i += nranks) idx.push_back(i);
      std::vector<float> xe(size_t(chunk) * Dataset::kDim);
      std::vector<int> ye(chunk);
      for (size_t off = 0; off < idx.size(); off += chunk) {
        int cnt = static_cast<int>(std::min<size_t>(chunk, idx.size() - off));
        toFloat(test, &idx[off], cnt, xe.data(), ye.data());
        int right = 0;
        sums[0] += forwardBackward(m, ws, xe.data(), ye.data(), cnt, false, &right);
        sums[1] += right;
        sums[2] += cnt;
      }
      MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      double tl[2] = {lossSum, static_cast<double>(lossCount)};
      MPI_Allreduce(MPI_IN_PLACE, tl, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      double times[3] = {comm_s + compute_s, comm_s, compute_s};
      MPI_Allreduce(MPI_IN_PLACE, times, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      double meanBytes = bytes;
      MPI_Allreduce(MPI_IN_PLACE, &meanBytes, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      meanBytes /= nranks;
      lossSum = 0;
      lossCount = 0;
      if (rank == 0) {
        std::string planText;
        for (const auto& kv : plans) planText += (planText.empty() ? "" : ";") + kv.first + "=" + std::to_string(kv.second);
        const double trainLoss = tl[1] > 0 ? tl[0] / tl[1] : NAN;
        std::fprintf(csv, "%s,%s,%s,%d,%d,%g,%g,%llu,%d,%d,%.4f,%.6f,%.6f,%.6f,%.0f,%.4f,%.4f,%.4f,%.3f,%016llx,\"%s\"\n",
                     opt.link.c_str(), opt.model.c_str(), method.c_str(), nranks, opt.batch, opt.lr, opt.momentum,
                     static_cast<unsigned long long>(opt.seed), opt.steps, step, double(step) / stepsPerEpoch, trainLoss,
                     sums[0] / sums[2], sums[1] / sums[2], meanBytes, times[0], times[1], times[2], setup,
                     static_cast<unsigned long long>(paramHash(m)), planText.c_str());
        std::fflush(csv);
        std::fprintf(stderr, "%-12s step %5d  train %.4f  test %.4f  acc %.4f  MB/rank %9.3f  wall %8.2f s (comm %8.2f)\n",
                     method.c_str(), step, trainLoss, sums[0] / sums[2], sums[1] / sums[2], meanBytes / 1e6, times[0],
                     times[1]);
      }
      drainLinks(opt.drainBytes, rank, nranks, comm, isMpi || opt.drainViaMpi);
      return opt.maxSeconds > 0 && times[0] >= opt.maxSeconds;
    };

    evaluate(0);
    for (int step = 1; step <= opt.steps; ++step) {
      const int epoch = (step - 1) / stepsPerEpoch, within = (step - 1) % stepsPerEpoch;
      if (epoch != currentEpoch) {
        // Epoch e's permutation from (seed, e); this rank's shard: positions rank, rank+N, ...
        for (int i = 0; i < train.n; ++i) perm[i] = i;
        uint64_t s = opt.seed * 0x100000001b3ull + static_cast<uint64_t>(epoch);
        for (int i = train.n - 1; i > 0; --i) std::swap(perm[i], perm[splitmix(s) % static_cast<uint64_t>(i + 1)]);
        for (int i = 0; i < shard; ++i) local[i] = perm[size_t(i) * nranks + rank];
        currentEpoch = epoch;
      }
      const double t0 = now();
      toFloat(train, &local[size_t(within) * opt.batch], opt.batch, xb.data(), yb.data());
      lossSum += forwardBackward(m, ws, xb.data(), yb.data(), opt.batch, true, nullptr) / opt.batch;
      lossCount += 1;
      if (method == "none" && captureAt.count(step)) {
        // Untimed: the write happens before t1 and is taken out of compute_s below.
        const double c0 = now();
        const std::string path = opt.captureDir + "/rank" + std::to_string(rank) + "_step" + std::to_string(step) + ".f32";
        FILE* f = std::fopen(path.c_str(), "wb");
        if (!f) die("cannot write %s", path.c_str());
        bool ok = true;
        for (const auto& g : m.grads) ok = ok && std::fwrite(g.data(), sizeof(float), g.size(), f) == g.size();
        if (std::fclose(f) != 0 || !ok) die("write error in %s", path.c_str());
        captureSeconds += now() - c0;
      }
      const double t1 = now();
      for (size_t t = 0; t < m.params.size(); ++t) {
        const size_t n = m.grads[t].size();
        if (isMpi) {
          MPI_Allreduce(m.grads[t].data(), reduced[t].data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
          for (float& v : reduced[t]) v /= static_cast<float>(nranks);
          bytes += 2.0 * (nranks - 1) / nranks * n * sizeof(float);
        } else {
          sqzResult_t r = sqzAllReduceEx(m.grads[t].data(), reduced[t].data(), n, sqzFloat32, sqzAvg, method.c_str(),
                                         states[t], comm, nullptr);
          if (r != sqzSuccess) die("sqzAllReduceEx(%s): %s", method.c_str(), sqzGetLastError(comm));
          sqzCallInfo info;
          sqzGetCallInfo(comm, &info);
          bytes += static_cast<double>(info.wireBytes);
          plans[info.plan]++;
        }
      }
      const double t2 = now();
      for (size_t t = 0; t < m.params.size(); ++t) {
        float* p = m.params[t].data();
        float* v = m.velocity[t].data();
        const float* g = reduced[t].data();
        const float mu = static_cast<float>(opt.momentum), lr = static_cast<float>(lrAt(step));
        for (size_t i = 0; i < m.params[t].size(); ++i) {
          v[i] = mu * v[i] + g[i];
          p[i] -= lr * v[i];
        }
      }
      const double t3 = now();
      compute_s += (t1 - t0) + (t3 - t2) - captureSeconds;
      captureSeconds = 0;
      comm_s += t2 - t1;
      int due = step % opt.evalEvery == 0 || step == opt.steps;
      if (opt.evalSeconds > 0 || opt.maxSeconds > 0) {
        // Time-driven points: rank 0's clock decides, every rank follows (untimed).
        const double wall = comm_s + compute_s;
        if (rank == 0)
          due = due || (opt.evalSeconds > 0 && wall - lastEvalWall >= opt.evalSeconds) ||
                (opt.maxSeconds > 0 && wall >= opt.maxSeconds);
        MPI_Bcast(&due, 1, MPI_INT, 0, MPI_COMM_WORLD);
      }
      if (due) {
        lastEvalWall = comm_s + compute_s;
        if (evaluate(step)) break;  // the method's time budget is spent (all ranks see the same max)
      }
    }
    for (sqzState_t s : states)
      if (s) sqzStateDestroy(s);
    // Replicas must agree bit for bit (every algorithm gives identical output on all ranks).
    uint64_t h = paramHash(m), h0 = h;
    MPI_Bcast(&h0, sizeof h0, MPI_BYTE, 0, MPI_COMM_WORLD);
    int differs = h != h0, anyDiffers = 0;
    MPI_Allreduce(&differs, &anyDiffers, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (anyDiffers && rank == 0) {
      // sqz promises bitwise-identical output on every rank; MPI does not.
      std::fprintf(stderr, "sqz_train_bench: %s: model replicas differ between ranks%s\n", method.c_str(),
                   isMpi ? " (MPI_Allreduce; not an sqz failure)" : "");
      if (!isMpi) ++failures;
    }
  }
  if (csv && csv != stdout) std::fclose(csv);
  sqzCommDestroy(comm);
  MPI_Finalize();
  return failures ? 1 : 0;
}
