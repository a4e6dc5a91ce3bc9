// The compiled mixers against references written from the published
// semantics: m2-conv as M2's fftconv_ref by direct sums (the convolution
// it computes through DFTs), monarch-seq as fly's
// blockdiag_butterfly_multiply_reference; SSD as the materialised semiseparable
// matrix M[l, s] = C_l·B_s exp(Σ_{t=s+1..l} a_t) (structures.md §7) applied in
// double to x ⊙ dt (Mamba-2's discretisation), Hydra as goombalab/hydra's
// forward reads (the SSD on x and on flip(x), each scaled by its half of
// dt, y rolled by one with y[0] = 0, the second flipped back, plus x ⊙ d);
// gradients against central differences of <dy, reference(...)>.
#include "compiler/cpu/JitMixer.h"
#include "search/Mixer.h"
#include "tests/unit/MixerReferences.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <thread>

using namespace einstruct;
using namespace einstruct::testing;

namespace {

using Tensors = std::vector<std::vector<double>>;

// The mixer in double, one sequence at a time (operands x, dt, a, B, C[, d]).
std::vector<double> reference(const JitMixer &m, const Tensors &in,
                              int64_t batch) {
  if (m.family() == "m2-conv") {
    const bool causal = in.size() == 3;
    return convReference(in[0].data(), in[1].data(),
                         causal ? nullptr : in[2].data(), in.back().data(),
                         batch, m.outputShape()[0], m.outputShape()[1]);
  }
  if (m.family() == "monarch-seq")
    return monarchReference(in[0].data(), in[1].data(), in[2].data(), batch,
                            m.outputShape()[0], m.outputShape()[1],
                            m.operands()[1].shape[0]);
  const int64_t L = m.outputShape()[0], H = m.ssd().heads,
                P = m.ssd().headDim, N = m.ssd().state, HP = H * P;
  std::vector<double> y(size_t(batch * L * HP));
  for (int64_t b = 0; b < batch; ++b) {
    const double *x = in[0].data() + b * L * HP;
    std::vector<double> yb;
    if (m.family() == "ssd") {
      auto xs = scaled(x, in[1].data() + b * L * H, H, L, H, P);
      yb = ssdReference(xs.data(), in[2].data() + b * L * H, H,
                        in[3].data() + b * L * N, in[4].data() + b * L * N, N,
                        L, H, P, N);
    } else {
      yb = hydraReference(
          x, in[1].data() + b * L * 2 * H, in[2].data() + b * L * 2 * H,
          in[3].data() + b * L * 2 * N, in[4].data() + b * L * 2 * N,
          in[5].data() + b * L * H, L, H, P, N);
    }
    std::copy(yb.begin(), yb.end(), y.begin() + b * L * HP);
  }
  return y;
}

struct Case {
  std::unique_ptr<JitMixer> mixer;
  Tensors in;
  int64_t batch;
};

// Random operands: x, B, C, d ~ N(0, 1); dt in (0.1, 1); a = dt·A with
// A < 0, as Mamba-2's log decays: here uniform in (−0.5, −0.05).
Case makeCase(const std::string &spec, int64_t L, int64_t batch, unsigned seed,
              int64_t channels = 0) {
  auto named = parseMixer(spec);
  REQUIRE(named);
  auto m = JitMixer::compile(*named, L, channels);
  INFO(spec);
  REQUIRE(m);
  Case c{std::move(*m), {}, batch};
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> decay(0.05, 0.5), step(0.1, 1.0);
  for (const auto &op : c.mixer->operands()) {
    int64_t n = op.perSequence ? batch : 1;
    for (int64_t d : op.shape)
      n *= d;
    std::vector<double> v(static_cast<size_t>(n));
    for (auto &e : v)
      e = op.name == "a" ? -decay(rng) : op.name == "dt" ? step(rng) : normal(rng);
    c.in.push_back(std::move(v));
  }
  return c;
}

std::vector<float> toFloat(const std::vector<double> &v) {
  return std::vector<float>(v.begin(), v.end());
}

// Rounds the operands to float, so that the reference sees what the JIT
// sees.
void roundToFloat(Case &c) {
  for (auto &v : c.in)
    for (auto &e : v)
      e = double(float(e));
}

// The case's operands in float, and a pointer to each.
struct FloatOperands {
  std::vector<std::vector<float>> data;
  std::vector<const float *> ptrs;
  explicit FloatOperands(const Case &c) {
    for (auto &v : c.in)
      data.push_back(toFloat(v));
    for (auto &v : data)
      ptrs.push_back(v.data());
  }
};

std::vector<float> run(const Case &c) {
  FloatOperands f(c);
  const auto &ptrs = f.ptrs;
  int64_t n = c.batch;
  for (int64_t d : c.mixer->outputShape())
    n *= d;
  std::vector<float> y(static_cast<size_t>(n));
  auto ok = c.mixer->forward(ptrs, c.batch, y.data());
  REQUIRE(ok);
  return y;
}

double maxRelative(const std::vector<float> &got, const std::vector<double> &want) {
  double scale = 0, err = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    scale = std::max(scale, std::abs(want[k]));
    err = std::max(err, std::abs(double(got[k]) - want[k]));
  }
  return err / std::max(scale, 1e-30);
}

void checkForward(const std::string &spec, int64_t L, int64_t batch,
                  int64_t channels = 0) {
  Case c = makeCase(spec, L, batch, 7, channels);
  roundToFloat(c);
  auto y = run(c);
  auto want = reference(*c.mixer, c.in, batch);
  INFO(spec << " L = " << L << " batch = " << batch);
  REQUIRE(y.size() == want.size());
  CHECK(maxRelative(y, want) < 2e-5);
}

// Every gradient against central differences of <dy, reference> in double.
void checkBackward(const std::string &spec, int64_t L, int64_t batch,
                   int64_t channels = 0) {
  Case c = makeCase(spec, L, batch, 11, channels);
  roundToFloat(c);
  const JitMixer &m = *c.mixer;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  std::vector<double> dy(reference(m, c.in, batch).size());
  for (auto &e : dy)
    e = double(float(normal(rng)));
  FloatOperands f(c);
  std::vector<std::vector<float>> g;
  std::vector<float *> grads;
  for (auto &v : c.in)
    grads.push_back(g.emplace_back(v.size()).data());
  auto dyf = toFloat(dy);
  auto ok = m.backward(f.ptrs, dyf.data(), batch, grads);
  REQUIRE(ok);
  auto objective = [&](const Tensors &in) {
    auto y = reference(m, in, batch);
    double s = 0;
    for (size_t k = 0; k < y.size(); ++k)
      s += dy[k] * y[k];
    return s;
  };
  for (size_t op = 0; op < c.in.size(); ++op) {
    std::vector<double> fd(c.in[op].size());
    double scale = 0, err = 0;
    for (size_t k = 0; k < fd.size(); ++k) {
      Tensors plus = c.in, minus = c.in;
      const double h = 1e-5;
      plus[op][k] += h;
      minus[op][k] -= h;
      fd[k] = (objective(plus) - objective(minus)) / (2 * h);
      scale = std::max(scale, std::abs(fd[k]));
      err = std::max(err, std::abs(fd[k] - double(g[op][k])));
    }
    INFO(spec << " L = " << L << " d" << m.operands()[op].name
              << ": max error " << err << " of max " << scale);
    CHECK(err <= 1e-4 * std::max(scale, 1.0));
  }
}

} // namespace

TEST_CASE("compiled SSD equals the materialised semiseparable matrix",
          "[mixer][jit]") {
  checkForward("ssd(heads=2, head_dim=3, state=4, chunk=4)", 16, 2);
  // A chunk that does not divide L (padded), one chunk, chunk 1.
  checkForward("ssd(heads=2, head_dim=3, state=2, chunk=3)", 7, 1);
  checkForward("ssd(heads=1, head_dim=2, state=1, chunk=5)", 5, 3);
  checkForward("ssd(heads=3, head_dim=1, state=2, chunk=1)", 6, 1);
  checkForward("ssd(heads=1, head_dim=1, state=1, chunk=1)", 1, 1);
  // The chunk chosen (64 of 150 tokens: three chunks, the last padded).
  checkForward("ssd(heads=2, head_dim=4, state=3)", 150, 2);
}

TEST_CASE("compiled Hydra equals the reference's two flipped SSD passes",
          "[mixer][jit]") {
  checkForward("hydra(heads=2, head_dim=3, state=2, chunk=4)", 16, 2);
  checkForward("hydra(heads=1, head_dim=2, state=3, chunk=3)", 7, 1);
  checkForward("hydra(heads=2, head_dim=1, state=1, chunk=1)", 1, 2);
  checkForward("hydra(heads=1, head_dim=1, state=1, chunk=2)", 2, 1);
}

TEST_CASE("SSD and Hydra gradients match finite differences",
          "[mixer][jit][autodiff]") {
  checkBackward("ssd(heads=2, head_dim=2, state=2, chunk=3)", 8, 2);
  checkBackward("ssd(heads=1, head_dim=1, state=1, chunk=1)", 1, 1);
  checkBackward("ssd(heads=1, head_dim=2, state=3, chunk=4)", 4, 1);
  checkBackward("hydra(heads=2, head_dim=2, state=2, chunk=3)", 7, 2);
  checkBackward("hydra(heads=1, head_dim=1, state=1, chunk=1)", 1, 1);
}

TEST_CASE("the compiled SSD does not leak the future", "[mixer][jit]") {
  Case c = makeCase("ssd(heads=2, head_dim=2, state=3, chunk=4)", 13, 1, 5);
  auto before = run(c);
  const int64_t t = 6, HP = 4;
  for (int64_t k = 0; k < HP; ++k)
    c.in[0][size_t(t * HP + k)] += 1.5;
  c.in[1][size_t(t * 2)] += 0.2;                 // dt at t
  c.in[2][size_t(t * 2)] -= 0.3;                 // a at t
  c.in[3][size_t(t * 3)] += 0.7;                 // B at t
  auto after = run(c);
  for (int64_t k = 0; k < t * HP; ++k)
    REQUIRE(after[size_t(k)] == before[size_t(k)]);
  bool changed = false;
  for (int64_t k = t * HP; k < int64_t(after.size()); ++k)
    changed |= after[size_t(k)] != before[size_t(k)];
  CHECK(changed);
}

TEST_CASE("results do not depend on the thread count", "[mixer][jit]") {
  Case c = makeCase("hydra(heads=2, head_dim=2, state=2, chunk=4)", 9, 5, 9);
  c.mixer->setThreads(1);
  auto one = run(c);
  c.mixer->setThreads(3);
  auto three = run(c);
  CHECK(one == three);
}

TEST_CASE("the backward, compiled on first use, is compiled once when "
          "threads race for it",
          "[mixer][jit][autodiff]") {
  // Forward first (compile() builds the forward alone), then four threads
  // ask for the backward at once: each gets the gradients a later, serial
  // call gives (checkBackward checks those against finite differences).
  Case c = makeCase("hydra(heads=2, head_dim=2, state=2, chunk=3)", 7, 2, 13);
  (void)run(c);
  FloatOperands f(c);
  std::vector<float> dy(f.data[0].size(), 0.5f);
  auto gradients = [&] {
    std::vector<std::vector<float>> g;
    std::vector<float *> gp;
    for (auto &v : f.data)
      gp.push_back(g.emplace_back(v.size()).data());
    auto ok = c.mixer->backward(f.ptrs, dy.data(), c.batch, gp);
    return ok ? g : std::vector<std::vector<float>>{};
  };
  std::vector<std::vector<std::vector<float>>> raced(4);
  std::vector<std::thread> threads;
  for (auto &r : raced)
    threads.emplace_back([&] { r = gradients(); });
  for (auto &t : threads)
    t.join();
  auto serial = gradients();
  REQUIRE_FALSE(serial.empty());
  for (const auto &r : raced)
    CHECK(r == serial);
}

TEST_CASE("compiled m2-conv equals M2's fftconv_ref by direct sums",
          "[mixer][jit]") {
  // 2L = 16 = 4² exactly; padded grids (2L = 14 -> 16, 2 -> 4, 26 -> 36);
  // channels past one block of 32 (the last block partly padded).
  checkForward("m2-conv(causal=true)", 8, 2, 3);
  checkForward("m2-conv(causal=true)", 7, 1, 2);
  checkForward("m2-conv(causal=true)", 1, 2, 1);
  checkForward("m2-conv(causal=false)", 13, 2, 3);
  checkForward("m2-conv(causal=false)", 8, 1, 2);
  checkForward("m2-conv(causal=true)", 5, 3, 37);
  // L = 128: 2L = 256 = 16², a grid of 8 rows filled of 16.
  checkForward("m2-conv(causal=false)", 128, 1, 4);
}

TEST_CASE("compiled monarch-seq equals fly's Monarch on each channel",
          "[mixer][jit]") {
  checkForward("monarch-seq(blocks=4)", 16, 2, 3);  // nb = m
  checkForward("monarch-seq(blocks=2)", 8, 1, 2);   // nb divides m
  checkForward("monarch-seq(blocks=8)", 16, 2, 33); // m divides nb
  checkForward("monarch-seq", 36, 1, 2);            // the divisor near √L
  checkForward("monarch-seq(blocks=1)", 3, 1, 1);
}

TEST_CASE("m2-conv and monarch-seq gradients match finite differences",
          "[mixer][jit][autodiff]") {
  checkBackward("m2-conv(causal=true)", 6, 2, 3);
  checkBackward("m2-conv(causal=false)", 5, 2, 2);
  checkBackward("m2-conv(causal=true)", 1, 1, 1);
  checkBackward("m2-conv(causal=false)", 1, 2, 2); // k_rev reaches nothing
  checkBackward("monarch-seq(blocks=2)", 8, 2, 3);
  checkBackward("monarch-seq(blocks=4)", 8, 1, 2);
}

TEST_CASE("the causal m2-conv does not leak the future", "[mixer][jit]") {
  Case c = makeCase("m2-conv(causal=true)", 11, 1, 5, 3);
  auto before = run(c);
  const int64_t t = 6, C = 3;
  for (int64_t k = 0; k < C; ++k)
    c.in[0][size_t(t * C + k)] += 1.5;
  auto after = run(c);
  // Not bit-identical before t: the DFT mixes every token's terms into
  // each output, so the perturbation reaches earlier outputs as rounding.
  double early = 0, late = 0;
  for (int64_t k = 0; k < int64_t(after.size()); ++k)
    (k < t * C ? early : late) =
        std::max(k < t * C ? early : late,
                 double(std::abs(after[size_t(k)] - before[size_t(k)])));
  CHECK(early < 1e-5);
  CHECK(late > 0.1);
}

TEST_CASE("m2-conv and monarch-seq results do not depend on the thread "
          "count",
          "[mixer][jit]") {
  for (auto [spec, L] :
       {std::pair{"m2-conv(causal=false)", 9}, {"monarch-seq(blocks=3)", 9}}) {
    Case c = makeCase(spec, L, 3, 9, 70);
    c.mixer->setThreads(1);
    auto one = run(c);
    c.mixer->setThreads(3);
    auto three = run(c);
    CHECK(one == three);
  }
}

TEST_CASE("mixers the CPU does not run are named", "[mixer][jit]") {
  auto named = parseMixer("toeplitz");
  REQUIRE(named);
  auto m = JitMixer::compile(*named, 16, 4);
  REQUIRE_FALSE(m);
  CHECK_THAT(m.error(), Catch::Contains("toeplitz is costed by analyze and "
                                        "search; the CPU runs ssd, hydra, "
                                        "m2-conv, monarch-seq, "
                                        "hydra-block and m2-block"));
  auto conv = JitMixer::compile(*parseMixer("m2-conv"), 16);
  REQUIRE_FALSE(conv);
  CHECK_THAT(conv.error(), Catch::Contains("m2-conv mixes each of d_model "
                                           "channels: d_model = 0"));
  auto fly = JitMixer::compile(*parseMixer("monarch-seq(blocks=4)"), 24, 2);
  REQUIRE_FALSE(fly);
  CHECK_THAT(fly.error(), Catch::Contains("monarch-seq: monarch: layout=fly "
                                          "with nblocks = 4"));
  auto big = parseMixer("ssd(heads=1, head_dim=1, state=1, chunk=9)");
  auto m2 = JitMixer::compile(*big, 8);
  REQUIRE_FALSE(m2);
  CHECK_THAT(m2.error(), Catch::Contains("chunk = 9 exceeds"));
}

TEST_CASE("a training forward keeps the residuals its backward reads",
          "[mixer][jit][autodiff]") {
  // backward() without residuals runs mixer_saving itself (the gradient
  // tests above check it against finite differences); with forwardSaving's
  // it must give the same bits, call after call, whatever the threads;
  // and forwardSaving's y is forward's.
  struct Spec {
    const char *spec;
    int64_t L, channels;
    // Floats kept per sequence, where known by hand: of an SSD pass over c
    // chunks of Q, only what no memory-bound op recomputes from the
    // operands, the C·Bᵀ scores (c·Q·Q) and the chunk states before the
    // scan (c·heads·head_dim·state); Hydra keeps both directions'. (State
    // and chunk above 4: contractions that sum fewer products per element
    // are recomputed too.)
    int64_t kept = 0;
  };
  // Lengths the chunk divides and ones it pads (other IR: the padding).
  for (Spec s : {Spec{"hydra(heads=2, head_dim=2, state=5, chunk=5)", 11, 0,
                      2 * (3 * 5 * 5 + 3 * 2 * 2 * 5)},
                 Spec{"hydra(heads=2, head_dim=2, state=5, chunk=5)", 10, 0,
                      2 * (2 * 5 * 5 + 2 * 2 * 2 * 5)},
                 Spec{"ssd(heads=1, head_dim=2, state=6, chunk=5)", 9, 0,
                      2 * 5 * 5 + 2 * 1 * 2 * 6},
                 Spec{"hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                      "chunk=4)",
                      10, 8},
                 Spec{"hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                      "chunk=4)",
                      8, 8},
                 Spec{"m2-block(causal=true, order=4, l_max=16)", 8, 4},
                 Spec{"m2-conv(causal=true)", 8, 3}}) {
    INFO(s.spec);
    Case c = makeCase(s.spec, s.L, 3, 21, s.channels);
    FloatOperands f(c);
    const auto y = run(c);
    std::vector<float> ySaving(y.size(), -1.0f);
    auto saved = c.mixer->forwardSaving(f.ptrs, c.batch, ySaving.data());
    REQUIRE(saved);
    if (s.kept > 0)
      CHECK((*saved)->bytes() == c.batch * s.kept * int64_t(sizeof(float)));
    double err = 0, scale = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      err = std::max(err, double(std::fabs(ySaving[i] - y[i])));
      scale = std::max(scale, double(std::fabs(y[i])));
    }
    // Up to rounding: returning intermediates changes which chains fuse
    // (Hydra's block: 2e-8 of the largest).
    CHECK(err <= 1e-6 * scale);
    std::vector<float> dy(y.size());
    for (size_t i = 0; i < dy.size(); ++i)
      dy[i] = float(std::sin(0.37 * double(i)));
    auto gradients = [&](const JitMixer::Saved *from, int threads) {
      c.mixer->setThreads(threads);
      std::vector<std::vector<float>> g;
      std::vector<float *> gp;
      for (auto &v : f.data)
        gp.push_back(g.emplace_back(v.size(), -7.0f).data());
      auto ok = c.mixer->backward(f.ptrs, dy.data(), c.batch, gp, from);
      REQUIRE(ok);
      return g;
    };
    const auto recomputed = gradients(nullptr, 1);
    CHECK(gradients(saved->get(), 1) == recomputed);
    CHECK(gradients(saved->get(), 2) == recomputed);
    c.mixer->setThreads(1);
    if (std::string(s.spec).rfind("m2-conv", 0) == 0)
      continue; // keeps nothing, so any batch goes
    std::vector<float *> gp;
    std::vector<std::vector<float>> g;
    for (auto &v : f.data)
      gp.push_back(g.emplace_back(v.size()).data());
    auto wrong = c.mixer->backward(f.ptrs, dy.data(), 2, gp, saved->get());
    REQUIRE_FALSE(wrong);
    CHECK_THAT(wrong.error(),
               Catch::Contains("the saved forward ran on 3 sequences, the "
                               "backward on 2"));
  }
}
