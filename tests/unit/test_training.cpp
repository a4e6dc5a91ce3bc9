// Training (compiler/train): the residual MLP's gradients against finite
// differences, AdamW and the schedule against torch's formulas written out
// here, the losses, the teacher's standardised output, the data task's
// errors.
#include "compiler/frontend/Npy.h"
#include "compiler/train/ResidualMlp.h"
#include "compiler/train/TrainingTask.h"
#include "search/Theta.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <random>
#include <unistd.h>

using namespace einstruct;

namespace {

Result<Layer> exactTheta(const char *theta, int64_t dIn, int64_t dOut) {
  return layerFromTheta(*parseTheta(theta), dIn, dOut, Sizing::Exact);
}

// The model's loss at its current parameters.
double lossAt(ResidualMlp &m, const std::vector<float> &x,
              const std::vector<float> &t, int64_t rows, int64_t dOut,
              LossKind kind) {
  std::vector<float> y;
  REQUIRE(m.forward(x.data(), rows, y));
  return lossOf(y, t.data(), rows, dOut, kind, nullptr);
}

void checkGradients(LossKind kind, bool structuredInput) {
  MlpShape s;
  s.dIn = 6;
  s.dOut = 3;
  s.width = 8;
  s.depth = 2;
  s.expansion = 2;
  s.baseWidth = 4;
  s.structuredInput = structuredInput;
  LayerCache cache(1);
  auto built = ResidualMlp::build(
      s,
      [](int64_t in, int64_t out) {
        return exactTheta("(0.5|0|0.5|0|0.5|0.5|0)", in, out);
      },
      3, cache);
  REQUIRE(built);
  ResidualMlp &m = *built;
  // Away from the zero initialisation, so every path carries gradient.
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0, 0.6f);
  for (auto &p : m.params())
    for (auto &v : p.value)
      v = normal(rng) + (p.name.find("gain") != std::string::npos ? 1 : 0);
  const int64_t rows = 5;
  std::vector<float> x(size_t(rows * s.dIn)), t;
  for (auto &v : x)
    v = normal(rng);
  if (kind == LossKind::CrossEntropy)
    t = {0, 2, 1, 1, 0};
  else
    for (int64_t i = 0; i < rows * s.dOut; ++i)
      t.push_back(normal(rng));
  auto loss = m.lossAndGradients(x.data(), t.data(), rows, kind, 0);
  REQUIRE(loss);
  CHECK(*loss == Approx(lossAt(m, x, t, rows, s.dOut, kind)));
  std::vector<std::vector<float>> grads;
  for (auto &p : m.params())
    grads.push_back(p.grad);
  const double h = 1e-2;
  int checked = 0;
  for (size_t k = 0; k < m.params().size(); ++k) {
    auto &p = m.params()[k];
    for (size_t i = 0; i < p.value.size(); i += 1 + p.value.size() / 4) {
      float keep = p.value[i];
      p.value[i] = keep + float(h);
      double up = lossAt(m, x, t, rows, s.dOut, kind);
      p.value[i] = keep - float(h);
      double down = lossAt(m, x, t, rows, s.dOut, kind);
      p.value[i] = keep;
      double fd = (up - down) / (2 * h);
      INFO(p.name << "[" << i << "]");
      CHECK(grads[k][i] == Approx(fd).margin(2e-3).epsilon(2e-2));
      ++checked;
    }
  }
  CHECK(checked > 40);
}

} // namespace

TEST_CASE("the residual MLP's gradients match finite differences",
          "[train]") {
  SECTION("MSE, structured blocks") {
    checkGradients(LossKind::MeanSquaredError, false);
  }
  SECTION("cross-entropy, structured input layer too") {
    checkGradients(LossKind::CrossEntropy, true);
  }
}

TEST_CASE("the MLP starts as the reference initialises it", "[train]") {
  MlpShape s;
  s.width = 16;
  s.depth = 2;
  LayerCache cache(1);
  auto m = ResidualMlp::build(
      s, [](int64_t in, int64_t out) { return exactTheta("(1|0|0|0|1|0|0.5)", in, out); },
      1, cache);
  REQUIRE(m);
  for (const auto &p : m->params()) {
    bool zero = std::all_of(p.value.begin(), p.value.end(),
                            [](float v) { return v == 0; });
    INFO(p.name);
    // Readout, each block's last core, biases and norm shifts start at 0.
    bool wantZero = p.name.rfind("readout", 0) == 0 ||
                    p.name.find(".l2.w1") != std::string::npos ||
                    p.name.find("bias") != std::string::npos ||
                    p.name.find("shift") != std::string::npos;
    CHECK(zero == wantZero);
  }
  // µP: base width 64, width 16: the dense factor is 4; a low-rank core of
  // the 16→64 block linear (α = 16, ρ = 4) gets 4 · (16/16)/2 and
  // 4 · (16/4)/2.
  for (const auto &p : m->params()) {
    if (p.name == "block0.l1.w0")
      CHECK(p.lrMult == Approx(2));
    if (p.name == "block0.l1.w1")
      CHECK(p.lrMult == Approx(8));
    if (p.name == "input.w0")
      CHECK(p.lrMult == Approx(1));
    if (p.name == "readout.w0")
      CHECK(p.lrMult == Approx(4));
    if (p.name.find("bias") != std::string::npos ||
        p.name.find("norm") != std::string::npos)
      CHECK(p.lrMult == 1);
  }
}

TEST_CASE("AdamW and the cosine schedule follow torch", "[train]") {
  // torch.optim.AdamW, written out in double: p *= 1 - lr·wd; moments;
  // p -= lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps).
  AdamWSettings s;
  s.weightDecay = 0.1;
  ParamTensor p("w", {0.5f, -1.0f, 2.0f}, 0.5);
  std::vector<double> w = {0.5, -1.0, 2.0}, m(3), v(3);
  const double grads[3][3] = {{0.1, -0.2, 0.3}, {-0.4, 0.1, 0.0}, {1, 2, -3}};
  for (int t = 1; t <= 3; ++t) {
    double lr = 0.01 * 0.5;
    for (int i = 0; i < 3; ++i) {
      p.grad[size_t(i)] = float(grads[t - 1][i]);
      w[i] *= 1 - lr * s.weightDecay;
      m[i] = 0.9 * m[i] + 0.1 * grads[t - 1][i];
      v[i] = 0.999 * v[i] + 0.001 * grads[t - 1][i] * grads[t - 1][i];
      w[i] -= lr / (1 - std::pow(0.9, t)) * m[i] /
              (std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
    }
    adamwStep(p, 0.01, t, s);
    for (int i = 0; i < 3; ++i)
      CHECK(p.value[size_t(i)] == Approx(w[i]).epsilon(1e-6));
  }
  // CosineAnnealingLR(T_max = 100): lr_t = base·(1 + cos(π t/100))/2 for
  // the t-th step counted from 0.
  CHECK(scheduledLr(2, 1, 100, 0, true) == Approx(2));
  CHECK(scheduledLr(2, 51, 100, 0, true) == Approx(1));
  CHECK(scheduledLr(2, 100, 100, 0, true) ==
        Approx(1 + std::cos(M_PI * 99 / 100)));
  CHECK(scheduledLr(2, 5, 100, 10, true) == Approx(1));  // warm-up
  CHECK(scheduledLr(2, 11, 100, 10, true) == Approx(2)); // then cosine
  CHECK(scheduledLr(2, 77, 100, 0, false) == Approx(2)); // constant
}

TEST_CASE("losses and their gradients", "[train]") {
  std::vector<float> dy;
  // MSE over every element.
  float t[] = {1, 0, 0, 0};
  CHECK(lossOf({2, 0, 0, 1}, t, 2, 2, LossKind::MeanSquaredError, &dy) ==
        Approx(0.5));
  CHECK(dy[0] == Approx(0.5));
  CHECK(dy[3] == Approx(0.5));
  // Cross-entropy of logits (0, ln 3) with label 1: -ln(3/4).
  float label[] = {1};
  CHECK(lossOf({0, float(std::log(3.0))}, label, 1, 2, LossKind::CrossEntropy,
               &dy) == Approx(-std::log(0.75)));
  CHECK(dy[0] == Approx(0.25));
  CHECK(dy[1] == Approx(-0.25));
}

TEST_CASE("the teacher's output is standardised", "[train]") {
  TeacherSpec s;
  s.width = 64;
  s.depth = 4;
  auto task = teacherTask(s, 4096);
  REQUIRE(task);
  const auto &y = (*task)->testTarget();
  REQUIRE(y.size() == 4096);
  double mean = 0, var = 0;
  for (float v : y)
    mean += v / 4096.0;
  for (float v : y)
    var += (v - mean) * (v - mean) / 4095.0;
  CHECK(mean == Approx(0).margin(0.1));
  CHECK(std::sqrt(var) == Approx(1).margin(0.1));
  // Batches are a function of (seed, step).
  std::vector<float> x1, t1, x2, t2;
  REQUIRE((*task)->batch(5, 17, 8, x1, t1));
  REQUIRE((*task)->batch(5, 18, 8, x2, t2));
  CHECK(x1 != x2);
  REQUIRE((*task)->batch(5, 17, 8, x2, t2));
  CHECK(x1 == x2);
  CHECK(t1 == t2);
}

TEST_CASE("data tasks name what disagrees", "[train]") {
  auto dir = std::string("/tmp/einstruct_train_test_") + std::to_string(getpid());
  REQUIRE(system(("mkdir -p " + dir).c_str()) == 0);
  auto save = [&](const std::string &name, NpyArray a) {
    std::ofstream(dir + "/" + name, std::ios::binary) << encodeNpy(a);
    return dir + "/" + name;
  };
  std::string x = save("x.npy", {{10, 3}, std::vector<float>(30, 1.0f)});
  std::string y9 = save("y9.npy", {{9, 1}, std::vector<float>(9, 0.0f)});
  std::string lbl = save("l.npy", {{10}, {0, 1, 2, 1, 0, 2, 1, 0, 1, 2}});
  std::string bad = save("b.npy", {{10}, {0, 1, 2.5f, 1, 0, 2, 1, 0, 1, 2}});
  DataSpec d;
  d.x = x;
  d.y = y9;
  auto r = dataTask(d);
  REQUIRE(!r);
  CHECK_THAT(r.error(), Catch::Contains("y9.npy: y must have x's 10 rows"));
  d.y = bad;
  d.classification = true;
  r = dataTask(d);
  REQUIRE(!r);
  CHECK_THAT(r.error(), Catch::Contains("b.npy: row 2: label 2.5 is not a "
                                        "class index"));
  d.y = lbl;
  r = dataTask(d);
  REQUIRE(r);
  CHECK((*r)->outputDim() == 3);
  CHECK((*r)->testRows() == 1);
  REQUIRE(system(("rm -rf " + dir).c_str()) == 0);
}
