// The runtime's C ABI and C++ wrapper around device choice: the stream
// entry points of CPU layers equal the plain ones bit for bit; CUDA layers
// are refused with EINSTRUCT_ERR_DEVICE where there is no driver or device
// (and created where there is); prebuilt libraries land in the cache; every
// bad argument is a status with a message.
#include "runtime/einstruct.hpp"
#include "tests/unit/ScopedEnv.h"

#include <catch2/catch.hpp>
#include <random>

using einstruct::CompiledLayer;
using namespace einstruct::testing;
namespace fs = std::filesystem;

namespace {

const char *kMonarch = R"J({"structure": "monarch(4)", "d_in": 32, "d_out": 24})J";
const char *kMoe =
    R"J({"structure": "btt-moe(experts=4, top_k=2)", "d_in": 16, "d_out": 16})J";

std::vector<float> random(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float &f : v)
    f = normal(rng);
  return v;
}

bool haveCudaDevice() {
  einstruct_layer *l = nullptr;
  int rc = einstruct_layer_create_cuda(kMonarch, "f32", 0, &l);
  einstruct_layer_destroy(l);
  return rc == EINSTRUCT_OK;
}

} // namespace

TEST_CASE("a CPU layer's stream entry points equal the plain ones",
          "[runtime]") {
  auto layer = CompiledLayer::cpu(kMonarch);
  CHECK(layer.device() == -1);
  CHECK(layer.dtype() == "f32");
  auto w = layer.initWeights(3);
  std::vector<const float *> wp{w[0].data(), w[1].data()};
  std::vector<const void *> wv{w[0].data(), w[1].data()};
  const int64_t batch = 5;
  auto x = random(batch * 32, 1), dy = random(batch * 24, 2);

  auto y = layer.forward(x, wp);
  std::vector<float> ys(y.size());
  layer.forwardStream(x.data(), batch, wv, ys.data());
  CHECK(ys == y);

  auto g = layer.backward(x, dy, wp);
  std::vector<float> dx(x.size()), dw1(w[0].size()), dw2(w[1].size());
  layer.backwardStream(x.data(), dy.data(), batch, wv, dx.data(),
                       {dw1.data(), dw2.data()});
  CHECK(dx == g.dx);
  CHECK(dw1 == g.dw[0]);
  CHECK(dw2 == g.dw[1]);

  // A stream means CUDA: refused for a CPU layer, nothing written.
  int fakeStream = 0;
  std::vector<float> untouched(y.size(), 7.0f);
  try {
    layer.forwardStream(x.data(), batch, wv, untouched.data(), &fakeStream);
    FAIL("a stream was accepted");
  } catch (const einstruct::Error &e) {
    CHECK(e.status == EINSTRUCT_ERR_ARGUMENT);
    CHECK_THAT(e.what(), Catch::Contains("stream = NULL"));
  }
  CHECK(untouched == std::vector<float>(y.size(), 7.0f));
  // Routing statistics belong to BTT-MoE (which gathers them on the CPU).
  CHECK(einstruct_layer_set_routing_stats(nullptr, 1) == EINSTRUCT_ERR_ARGUMENT);
  einstruct_layer *moe = nullptr;
  REQUIRE(einstruct_layer_create_cpu(kMoe, &moe) == EINSTRUCT_OK);
  CHECK(einstruct_layer_set_routing_stats(moe, 0) == EINSTRUCT_OK);
  einstruct_layer_destroy(moe);
}

TEST_CASE("a spec's bias is the last weight: y + b, db = column sums of dy",
          "[runtime]") {
  auto plain = CompiledLayer::cpu(kMonarch);
  auto biased = CompiledLayer::cpu(
      R"J({"structure": "monarch(4)", "d_in": 32, "d_out": 24, "bias": true})J");
  REQUIRE(biased.weightShapes().size() == 3);
  CHECK(biased.weightShapes().back() == std::vector<int64_t>{24});
  auto w = biased.initWeights(4);
  CHECK(w[2] == std::vector<float>(24, 0.0f)); // a bias starts at zero
  w[2] = random(24, 9);
  const int64_t batch = 6;
  auto x = random(batch * 32, 5), dy = random(batch * 24, 6);
  auto y0 = plain.forward(x, {w[0].data(), w[1].data()});
  auto y = biased.forward(x, {w[0].data(), w[1].data(), w[2].data()});
  REQUIRE(y.size() == y0.size());
  for (size_t k = 0; k < y.size(); ++k)
    CHECK(y[k] == y0[k] + w[2][k % 24]);
  auto g0 = plain.backward(x, dy, {w[0].data(), w[1].data()});
  auto g = biased.backward(x, dy, {w[0].data(), w[1].data(), w[2].data()});
  CHECK(g.dx == g0.dx);
  CHECK(g.dw[0] == g0.dw[0]);
  CHECK(g.dw[1] == g0.dw[1]);
  for (int64_t c = 0; c < 24; ++c) {
    double sum = 0;
    for (int64_t r = 0; r < batch; ++r)
      sum += dy[size_t(r * 24 + c)];
    CHECK(g.dw[2][size_t(c)] == Approx(sum).epsilon(1e-6));
  }
  // And a BTT-MoE's bias follows its router.
  auto moe = CompiledLayer::cpu(
      R"J({"structure": "btt-moe(experts=4, top_k=2)", "d_in": 16,
           "d_out": 16, "bias": true})J");
  REQUIRE(moe.weightShapes().size() == 4);
  CHECK(moe.weightShapes()[2] == std::vector<int64_t>{16, 4});
  CHECK(moe.weightShapes()[3] == std::vector<int64_t>{16});
}

TEST_CASE("CUDA layers: arguments, and no driver or device is "
          "EINSTRUCT_ERR_DEVICE",
          "[runtime][cuda]") {
  einstruct_layer *l = nullptr;
  CHECK(einstruct_layer_create_cuda(kMonarch, "f64", 0, &l) ==
        EINSTRUCT_ERR_ARGUMENT);
  CHECK_THAT(einstruct_last_error(),
             Catch::Contains("dtype 'f64' is not one of f32, bf16, f16"));
  CHECK(einstruct_layer_create_cuda(kMonarch, nullptr, 0, &l) ==
        EINSTRUCT_ERR_ARGUMENT);
  CHECK(einstruct_layer_create_cuda(
            R"J({"structure": "monarch(5)", "d_in": 64, "d_out": 64})J", "bf16",
            0, &l) == EINSTRUCT_ERR_SPEC);
  CHECK(l == nullptr);
  CHECK(einstruct_layer_create_cuda(kMonarch, "f32", 999, &l) ==
        EINSTRUCT_ERR_DEVICE);
  CHECK_THAT(einstruct_last_error(),
             Catch::Contains("no CUDA") || Catch::Contains("device 999"));
  CHECK(l == nullptr);
  if (haveCudaDevice()) {
    WARN("a CUDA device is present: tests/gpu/runtime_check runs it");
    return;
  }
  int rc = einstruct_layer_create_cuda(kMonarch, "bf16", 0, &l);
  CHECK(rc == EINSTRUCT_ERR_DEVICE);
  CHECK(l == nullptr);
  CHECK_THAT(einstruct_last_error(), Catch::Contains("no CUDA"));
  try {
    CompiledLayer::cuda(kMonarch);
    FAIL("a CUDA layer without a device");
  } catch (const einstruct::Error &e) {
    CHECK(e.status == EINSTRUCT_ERR_DEVICE);
  }
}

TEST_CASE("a prebuilt CUDA library lands in the cache", "[runtime][cuda]") {
  fs::path dir = freshDirectory("prebuild");
  CacheDir scoped(dir.string());
  char path[4096] = {};
  int rc = einstruct_cuda_prebuild(kMonarch, "bf16", "sm_90a", path, sizeof path);
  if (rc == EINSTRUCT_ERR_COMPILE &&
      std::string(einstruct_last_error()).find("no CUDA compiler") !=
          std::string::npos) {
    WARN("SKIP: " << einstruct_last_error());
    return;
  }
  REQUIRE(rc == EINSTRUCT_OK);
  CHECK(fs::path(path).parent_path() == dir / "cuda");
  CHECK(fs::exists(path));
  CHECK(CompiledLayer::prebuildCuda(kMonarch, "bf16", "sm_90a") == path);
  // The MoE layer too.
  CHECK(einstruct_cuda_prebuild(kMoe, "bf16", "sm_90a", nullptr, 0) ==
        EINSTRUCT_OK);

  char small[8];
  CHECK(einstruct_cuda_prebuild(kMonarch, "bf16", "sm_90a", small,
                                sizeof small) == EINSTRUCT_ERR_ARGUMENT);
  CHECK_THAT(einstruct_last_error(), Catch::Contains("path_size 8 is too small"));
  CHECK(einstruct_cuda_prebuild(kMonarch, "bf16", "compute_90", path,
                                sizeof path) == EINSTRUCT_ERR_COMPILE);
  CHECK_THAT(einstruct_last_error(), Catch::Contains("'compute_90'"));
  CHECK(einstruct_cuda_prebuild(kMonarch, "bf16", nullptr, path, sizeof path) ==
        EINSTRUCT_ERR_ARGUMENT);
  {
    CacheDir off("off");
    CHECK(einstruct_cuda_prebuild(kMonarch, "bf16", "sm_90a", path,
                                  sizeof path) == EINSTRUCT_ERR_ARGUMENT);
    CHECK_THAT(einstruct_last_error(), Catch::Contains("cache is off"));
  }
  fs::remove_all(dir);
}

TEST_CASE("batch sizes whose arrays would overflow are refused, not run",
          "[runtime]") {
  // A 16-wide layer: 2^60 rows wrapped batch × width (heap corruption), and
  // INT64_MAX spun; both are statuses now, nothing touched.
  einstruct_layer *l = nullptr;
  REQUIRE(einstruct_layer_create_cpu(
              R"J({"structure": "monarch(4)", "d_in": 16, "d_out": 16})J",
              &l) == EINSTRUCT_OK);
  std::vector<float> x(16, 1.0f), y(16, 7.0f), w1(64), w2(64);
  const float *w[] = {w1.data(), w2.data()};
  for (int64_t batch : {int64_t(1) << 60, INT64_MAX, (int64_t(1) << 36) + 1}) {
    INFO(batch);
    CHECK(einstruct_layer_forward(l, x.data(), batch, w, y.data()) ==
          EINSTRUCT_ERR_ARGUMENT);
    CHECK_THAT(einstruct_last_error(),
               Catch::Contains("exceeds the 2^40 elements an array may hold"));
  }
  CHECK(y == std::vector<float>(16, 7.0f));
  CHECK(einstruct_layer_forward(l, x.data(), 1, w, y.data()) == EINSTRUCT_OK);
  einstruct_layer_destroy(l);
}

TEST_CASE("mixers through the C ABI: operands, forward against the "
          "materialised SSD, gradients' shapes, bad arguments",
          "[runtime][mixer]") {
  einstruct_mixer *m = nullptr;
  REQUIRE(einstruct_mixer_create_cpu("ssd(heads=2, head_dim=3, state=2, "
                                     "chunk=4)",
                                     9, 0, &m) == EINSTRUCT_OK);
  REQUIRE(einstruct_mixer_num_operands(m) == 5);
  const char *names[5];
  int64_t dims[5][4];
  int ranks[5];
  for (int k = 0; k < 5; ++k)
    ranks[k] = einstruct_mixer_operand(m, k, &names[k], dims[k], 4);
  CHECK(std::string(names[0]) + "," + names[1] + "," + names[2] + "," +
            names[3] + "," + names[4] ==
        "x,dt,a,B,C");
  CHECK(ranks[0] == 3);
  CHECK(dims[0][0] == 9);
  CHECK(dims[0][1] == 2);
  CHECK(dims[0][2] == 3);
  CHECK(ranks[1] == 2);
  CHECK(dims[3][1] == 2);
  // y[l, h, p] = Σ_{s ≤ l} (C_l·B_s) exp(Σ_{t=s+1..l} a[t, h]) dt[s, h]
  // x[s, h, p].
  const int L = 9, H = 2, P = 3, N = 2;
  auto x = random(L * H * P, 1), B = random(L * N, 2), C = random(L * N, 3);
  auto a = random(L * H, 4), dt = random(L * H, 5);
  for (float &v : a)
    v = -0.1f - 0.1f * std::abs(v);
  for (float &v : dt)
    v = 0.5f + 0.2f * std::abs(v);
  const float *in[5] = {x.data(), dt.data(), a.data(), B.data(), C.data()};
  std::vector<float> y(L * H * P);
  REQUIRE(einstruct_mixer_forward(m, in, 1, y.data()) == EINSTRUCT_OK);
  double err = 0;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      for (int p = 0; p < P; ++p) {
        double want = 0;
        for (int s = 0; s <= l; ++s) {
          double decay = 0, cb = 0;
          for (int t = s + 1; t <= l; ++t)
            decay += a[t * H + h];
          for (int n = 0; n < N; ++n)
            cb += double(C[l * N + n]) * B[s * N + n];
          want += cb * std::exp(decay) * dt[s * H + h] * x[(s * H + h) * P + p];
        }
        err = std::max(err, std::abs(want - y[(l * H + h) * P + p]));
      }
  CHECK(err < 1e-5);
  std::vector<float> dx(x.size()), ddt(dt.size()), da(a.size()), dB(B.size()),
      dC(C.size());
  float *grads[5] = {dx.data(), ddt.data(), da.data(), dB.data(), dC.data()};
  REQUIRE(einstruct_mixer_backward(m, in, y.data(), 1, grads) == EINSTRUCT_OK);
  // <y, y> is positive, so is its gradient's inner product with x: 2<y, y>.
  double dot = 0, yy = 0;
  for (size_t k = 0; k < x.size(); ++k)
    dot += double(dx[k]) * x[k], yy += double(y[k]) * y[k];
  CHECK(std::abs(dot - yy) < 1e-4 * yy); // y is linear in x: <M^T y, x> = <y, y>
  // Training's pair: the same y, and the same gradients from the residuals.
  {
    const void *const *vin = reinterpret_cast<const void *const *>(in);
    std::vector<float> y2(y.size());
    einstruct_mixer_saved *saved = nullptr;
    REQUIRE(einstruct_mixer_forward_saving(m, vin, 1, y2.data(), nullptr,
                                           &saved) == EINSTRUCT_OK);
    REQUIRE(saved);
    CHECK(y2 == y);
    std::vector<float> dx2(x.size()), ddt2(dt.size()), da2(a.size()),
        dB2(B.size()), dC2(C.size());
    void *grads2[5] = {dx2.data(), ddt2.data(), da2.data(), dB2.data(),
                       dC2.data()};
    REQUIRE(einstruct_mixer_backward_saved(m, saved, vin, y.data(), 1, grads2,
                                           nullptr) == EINSTRUCT_OK);
    CHECK(dx2 == dx);
    CHECK(da2 == da);
    CHECK(dC2 == dC);
    CHECK(einstruct_mixer_backward_saved(m, saved, vin, y.data(), 2, grads2,
                                         nullptr) == EINSTRUCT_ERR_ARGUMENT);
    CHECK(std::string(einstruct_last_error()) ==
          "the saved forward ran on 1 sequences, the backward on 2");
    CHECK(einstruct_mixer_backward_saved(m, nullptr, vin, y.data(), 1, grads2,
                                         nullptr) == EINSTRUCT_ERR_ARGUMENT);
    CHECK(einstruct_mixer_forward_saving(m, vin, 1, y2.data(), nullptr,
                                         nullptr) == EINSTRUCT_ERR_ARGUMENT);
    einstruct_mixer_saved_destroy(saved);
  }
  CHECK(einstruct_mixer_forward(m, in, 0, y.data()) == EINSTRUCT_ERR_ARGUMENT);
  CHECK(std::string(einstruct_last_error()) == "batch = 0 must be positive");
  const float *missing[5] = {x.data(), dt.data(), nullptr, B.data(), C.data()};
  CHECK(einstruct_mixer_forward(m, missing, 1, y.data()) ==
        EINSTRUCT_ERR_ARGUMENT);
  CHECK(einstruct_mixer_operand(m, 5, nullptr, nullptr, 0) ==
        EINSTRUCT_ERR_ARGUMENT);
  CHECK(einstruct_mixer_set_threads(m, 0) == EINSTRUCT_ERR_ARGUMENT);
  einstruct_mixer_destroy(m);
  einstruct_mixer *bad = nullptr;
  CHECK(einstruct_mixer_create_cpu("ssd(heads=2)", 8, 0, &bad) ==
        EINSTRUCT_ERR_SPEC);
  CHECK(std::string(einstruct_last_error()).find("head_dim") !=
        std::string::npos);
  CHECK(bad == nullptr);
  CHECK(einstruct_mixer_create_cpu("ssd(heads=2, head_dim=3, state=2)", 8, 5,
                                   &bad) == EINSTRUCT_ERR_SPEC);
  CHECK(std::string(einstruct_last_error()) ==
        "d_model = 5 but ssd has heads · head_dim = 6");
  CHECK(einstruct_mixer_create_cpu("monarch-seq(blocks=4)", 16, 0, &bad) ==
        EINSTRUCT_ERR_SPEC);
  CHECK(std::string(einstruct_last_error()) ==
        "monarch-seq mixes each of d_model channels: d_model = 0 must be in "
        "[1, 2^20]");
  CHECK(einstruct_mixer_create_cpu("dense-seq", 16, 4, &bad) ==
        EINSTRUCT_ERR_SPEC);
  CHECK(std::string(einstruct_last_error()) ==
        "dense-seq is costed by analyze and search; the CPU runs ssd, hydra, "
        "m2-conv, monarch-seq, hydra-block and m2-block");
  // A block's bad sizes on CUDA: a spec error, before any device is
  // looked for.
  CHECK(einstruct_mixer_create_cuda("hydra-block(state=4, head_dim=5)", 16, 8,
                                    0, &bad) == EINSTRUCT_ERR_SPEC);
  CHECK_THAT(std::string(einstruct_last_error()),
             Catch::Contains("head_dim = 5 does not divide expand × d_model"));
}

TEST_CASE("an m2-conv through the C ABI: shared operands, the causal "
          "convolution by direct sums",
          "[runtime][mixer]") {
  einstruct_mixer *m = nullptr;
  const int L = 7, C = 3, batch = 2;
  REQUIRE(einstruct_mixer_create_cpu("m2-conv(causal=true)", L, C, &m) ==
          EINSTRUCT_OK);
  REQUIRE(einstruct_mixer_num_operands(m) == 3);
  const char *name = nullptr;
  int64_t dims[4];
  CHECK(einstruct_mixer_operand(m, 1, &name, dims, 4) == 2);
  CHECK(std::string(name) == "k");
  CHECK(einstruct_mixer_operand_per_sequence(m, 0) == 1);
  CHECK(einstruct_mixer_operand_per_sequence(m, 1) == 0);
  CHECK(einstruct_mixer_operand_per_sequence(m, 2) == 0);
  CHECK(einstruct_mixer_operand_per_sequence(m, 3) == EINSTRUCT_ERR_ARGUMENT);
  auto x = random(batch * L * C, 6), k = random(L * C, 7), D = random(C, 8);
  const float *in[3] = {x.data(), k.data(), D.data()};
  std::vector<float> y(x.size());
  REQUIRE(einstruct_mixer_forward(m, in, batch, y.data()) == EINSTRUCT_OK);
  double err = 0;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < L; ++i)
      for (int c = 0; c < C; ++c) {
        double want = double(D[c]) * x[(b * L + i) * C + c];
        for (int j = 0; j <= i; ++j)
          want += double(k[(i - j) * C + c]) * x[(b * L + j) * C + c];
        err = std::max(err, std::abs(want - y[(b * L + i) * C + c]));
      }
  CHECK(err < 1e-5);
  einstruct_mixer_destroy(m);
}

TEST_CASE("the C++ wrapper's CompiledMixer runs Hydra and throws on bad "
          "specs",
          "[runtime][mixer]") {
  auto m = einstruct::CompiledMixer::cpu("hydra(heads=1, head_dim=2, state=1, "
                                         "chunk=2)",
                                         3);
  auto ops = m.operands();
  REQUIRE(ops.size() == 6);
  CHECK(ops[5].name == "d");
  CHECK(ops[5].shape == std::vector<int64_t>{3, 1});
  // With B = C = 0 both SSD passes vanish: y = d ⊙ x exactly.
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, dt(6, 0.3f), a(6, -0.5f),
                     B(6, 0.f), C(6, 0.f), d = {2, -1, 0.5f}, y(6);
  m.forward({x.data(), dt.data(), a.data(), B.data(), C.data(), d.data()}, 1,
            y.data());
  CHECK(y == std::vector<float>{2, 4, -3, -4, 2.5f, 3});
  // Training's pair: with dy = 1, dx = d per token and dd = Σ_p x.
  std::vector<const void *> in = {x.data(), dt.data(), a.data(),
                                  B.data(), C.data(),  d.data()};
  std::vector<float> y2(6), dy(6, 1.f), dx(6), ddt(6), da(6), dB(6), dC(6),
      dd(3);
  auto kept = m.forwardSaving(in, 1, y2.data());
  CHECK(y2 == y);
  m.backwardSaved(
      kept, in, dy.data(), 1,
      {dx.data(), ddt.data(), da.data(), dB.data(), dC.data(), dd.data()});
  CHECK(dx == std::vector<float>{2, 2, -1, -1, 0.5f, 0.5f});
  CHECK(dd == std::vector<float>{3, 7, 11});
  try {
    einstruct::CompiledMixer::cpu("hydra(heads=1)", 3);
    FAIL("no error");
  } catch (const einstruct::Error &e) {
    CHECK(e.status == EINSTRUCT_ERR_SPEC);
  }
}

TEST_CASE("CUDA mixers: the spec's errors first, then no driver or device "
          "is EINSTRUCT_ERR_DEVICE; a CPU mixer's stream calls",
          "[runtime][mixer][cuda]") {
  einstruct_mixer *m = nullptr;
  CHECK(einstruct_mixer_create_cuda("ssd(heads=2)", 8, 0, 0, &m) ==
        EINSTRUCT_ERR_SPEC);
  CHECK(einstruct_mixer_create_cuda("ssd(heads=2, head_dim=3, state=2, "
                                    "chunk=16)",
                                    8, 0, 0, &m) == EINSTRUCT_ERR_SPEC);
  CHECK_THAT(einstruct_last_error(), Catch::Contains("exceeds the sequence"));
  CHECK(einstruct_mixer_create_cuda(nullptr, 8, 0, 0, &m) ==
        EINSTRUCT_ERR_ARGUMENT);
  CHECK(einstruct_mixer_create_cuda("ssd(heads=2, head_dim=3, state=2)", 8, 0,
                                    999, &m) == EINSTRUCT_ERR_DEVICE);
  CHECK_THAT(einstruct_last_error(),
             Catch::Contains("no CUDA") || Catch::Contains("device 999"));
  CHECK(m == nullptr);
  if (haveCudaDevice()) {
    WARN("a CUDA device is present: tests/gpu/check_torch.py runs mixers");
  } else {
    CHECK(einstruct_mixer_create_cuda("hydra(heads=1, head_dim=2, state=1)", 8,
                                      0, 0, &m) == EINSTRUCT_ERR_DEVICE);
    CHECK(m == nullptr);
    try {
      einstruct::CompiledMixer::cuda("hydra(heads=1, head_dim=2, state=1)", 8);
      FAIL("a CUDA mixer without a device");
    } catch (const einstruct::Error &e) {
      CHECK(e.status == EINSTRUCT_ERR_DEVICE);
    }
  }

  // A CPU mixer: device -1, the stream calls equal the plain ones and
  // refuse a stream.
  auto cpu = einstruct::CompiledMixer::cpu("hydra(heads=1, head_dim=2, "
                                           "state=1, chunk=2)",
                                           3);
  CHECK(cpu.device() == -1);
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, dt(6, 0.3f), a(6, -0.5f),
                     B = {1, -1, 2, 0.5f, 1, 1}, C = {0.5f, 2, -1, 1, 1, 3},
                     d = {2, -1, 0.5f}, y(6), ys(6);
  std::vector<const float *> in{x.data(), dt.data(), a.data(),
                                B.data(), C.data(),  d.data()};
  std::vector<const void *> inv(in.begin(), in.end());
  cpu.forward(in, 1, y.data());
  cpu.forwardStream(inv, 1, ys.data());
  CHECK(ys == y);
  std::vector<std::vector<float>> g(6, std::vector<float>(6)),
      gs(6, std::vector<float>(6));
  std::vector<float *> gp;
  std::vector<void *> gsp;
  for (int k = 0; k < 6; ++k) {
    gp.push_back(g[size_t(k)].data());
    gsp.push_back(gs[size_t(k)].data());
  }
  cpu.backward(in, y.data(), 1, gp);
  cpu.backwardStream(inv, y.data(), 1, gsp);
  CHECK(gs == g);
  int stream = 0; // any non-null pointer
  try {
    cpu.forwardStream(inv, 1, ys.data(), &stream);
    FAIL("a stream for a CPU mixer");
  } catch (const einstruct::Error &e) {
    CHECK(e.status == EINSTRUCT_ERR_ARGUMENT);
    CHECK_THAT(std::string(e.what()), Catch::Contains("stream must be null"));
  }
}
