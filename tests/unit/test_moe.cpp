// BTT-MoE on the CPU against an independent double-precision reference that
// computes every expert for every token and gates z (structures.md §3, the
// published semantics): routing on a worked example, the forward pass, and
// every gradient against central finite differences of
// L = <dy, y> + auxWeight·aux.
#include "compiler/cpu/MoeLayer.h"
#include "tests/unit/BruteForce.h"
#include "tests/unit/NamedLayer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>

using namespace einstruct;
using einstruct::testing::denseMatrix;
using einstruct::testing::namedLayer;

namespace {

struct Problem {
  Layer layer;
  int64_t T;
  std::vector<double> x, wg, w1, w2, dy; // double copies of the inputs
};

// The reference: logits, top-k (ties to the lower index), gates = softmax of
// the selected + 1e-6, aux loss; y_t = Σ_e gate_te · M_e x_t where M_e is the
// dense matrix with W1 cut to rank slice e, i.e. z's rank e scaled by the
// gate before W2.
struct Reference {
  std::vector<double> y;
  double aux = 0;
  std::vector<int64_t> counts;
};

Reference reference(const Problem &p) {
  const Layer &l = p.layer;
  const EinsumTerm &t = l.terms[0];
  const int64_t E = l.experts, K = l.topK, n = l.dIn, m = l.dOut;
  // W1 layout: rank letter 'r' somewhere in the letters.
  const std::string &a = t.weights[0];
  size_t at = a.find('r');
  REQUIRE(at != std::string::npos);
  const int64_t inner = t.extent(a.substr(at + 1));
  std::vector<std::vector<std::vector<double>>> M;
  for (int64_t e = 0; e < E; ++e) {
    std::vector<double> w1 = p.w1;
    for (size_t i = 0; i < w1.size(); ++i)
      if (int64_t(i) / inner % E != e)
        w1[i] = 0;
    M.push_back(denseMatrix(t, {w1, p.w2}));
  }
  Reference r;
  r.y.assign(size_t(p.T * m), 0);
  r.counts.assign(size_t(E), 0);
  std::vector<double> pSum(size_t(E), 0);
  double lseSq = 0;
  for (int64_t tok = 0; tok < p.T; ++tok) {
    std::vector<double> lg(size_t(E), 0);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t i = 0; i < n; ++i)
        lg[size_t(e)] += p.x[size_t(tok * n + i)] * p.wg[size_t(i * E + e)];
    double mx = *std::max_element(lg.begin(), lg.end()), s = 0;
    for (double v : lg)
      s += std::exp(v - mx);
    double lse = mx + std::log(s);
    lseSq += lse * lse;
    for (int64_t e = 0; e < E; ++e)
      pSum[size_t(e)] += std::exp(lg[size_t(e)] - lse);
    std::vector<int64_t> order(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e)
      order[size_t(e)] = e;
    std::sort(order.begin(), order.end(), [&](int64_t u, int64_t v) {
      return lg[size_t(u)] != lg[size_t(v)] ? lg[size_t(u)] > lg[size_t(v)]
                                            : u < v; // ties: lower index
    });
    double z = 0;
    for (int64_t k = 0; k < K; ++k)
      z += std::exp(lg[size_t(order[size_t(k)])] - mx);
    for (int64_t k = 0; k < K; ++k) {
      int64_t e = order[size_t(k)];
      ++r.counts[size_t(e)];
      double gate = std::exp(lg[size_t(e)] - mx) / z + 1e-6;
      for (int64_t o = 0; o < m; ++o)
        for (int64_t i = 0; i < n; ++i)
          r.y[size_t(tok * m + o)] += gate *
                                      M[size_t(e)][size_t(o)][size_t(i)] *
                                      p.x[size_t(tok * n + i)];
    }
  }
  double bal = 0;
  for (int64_t e = 0; e < E; ++e)
    bal += pSum[size_t(e)] / double(p.T) * double(r.counts[size_t(e)]) /
           double(p.T * K);
  r.aux = double(E) * bal + 0.1 * lseSq / double(p.T);
  return r;
}

double lossOf(const Problem &p, double auxWeight) {
  Reference r = reference(p);
  double f = auxWeight * r.aux;
  for (size_t i = 0; i < r.y.size(); ++i)
    f += p.dy[i] * r.y[i];
  return f;
}

std::vector<float> toFloat(const std::vector<double> &v) {
  return std::vector<float>(v.begin(), v.end());
}

Problem makeProblem(const Layer &l, int64_t T, double routerScale,
                    std::mt19937 &rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  auto fill = [&](size_t count, double scale) {
    std::vector<double> v(count);
    for (auto &x : v)
      x = double(float(u(rng) * scale)); // exactly representable in float
    return v;
  };
  auto shapes = weightShapes(l);
  auto count = [](const std::vector<int64_t> &s) {
    size_t c = 1;
    for (int64_t d : s)
      c *= size_t(d);
    return c;
  };
  Problem p{l, T, {}, {}, {}, {}, {}};
  p.x = fill(size_t(T * l.dIn), 1);
  p.wg = fill(size_t(l.dIn * l.experts), routerScale);
  p.w1 = fill(count(shapes[0]), 1);
  p.w2 = fill(count(shapes[1]), 1);
  p.dy = fill(size_t(T * l.dOut), 1);
  return p;
}

// Central differences of the reference loss against `analytic`, at a spread
// of entries of `param`.
void checkGradient(Problem p, std::vector<double> Problem::*param,
                   const std::vector<float> &analytic, double auxWeight,
                   const char *what) {
  const auto &v = p.*param;
  REQUIRE(analytic.size() == v.size());
  double maxAbs = 0;
  for (float g : analytic)
    maxAbs = std::max(maxAbs, double(std::fabs(g)));
  const double h = 1e-4;
  size_t step = std::max<size_t>(1, v.size() / 23);
  for (size_t i = 0; i < v.size(); i += step) {
    Problem plus = p, minus = p;
    (plus.*param)[i] += h;
    (minus.*param)[i] -= h;
    double fd = (lossOf(plus, auxWeight) - lossOf(minus, auxWeight)) / (2 * h);
    INFO(what << "[" << i << "]: analytic " << analytic[i] << " vs FD " << fd);
    CHECK(std::fabs(analytic[i] - fd) <= 1e-3 * std::max(1.0, maxAbs));
  }
}

// Layers for the lowered paths: E = 4, 8, 5 experts, top-2, 3, 1, widths
// that are not powers of two.
struct LoweredCase {
  const char *spec;
  int64_t dIn, dOut;
};
const LoweredCase kLoweredCases[] = {
    {"btt-moe(experts=4, top_k=2, in_blocks=4, out_blocks=3)", 16, 12},
    {"btt-moe(experts=8, top_k=3, in_blocks=4, out_blocks=4)", 32, 20},
    {"btt-moe(experts=5, top_k=1, in_blocks=3, out_blocks=5)", 21, 15}};

// body(layer, moe, problem, routerScale) for each case, 1, 13 and 70
// tokens, a random router and a zero one (all logits tie).
template <class Body> void forEachLoweredProblem(unsigned seed, Body &&body) {
  std::mt19937 rng(seed);
  for (const LoweredCase &c : kLoweredCases) {
    Layer l = namedLayer(c.spec, c.dIn, c.dOut);
    auto moe = MoeLayer::compile(l);
    REQUIRE(moe);
    for (int64_t T : {1, 13, 70})
      for (double routerScale : {1.0, 0.0}) {
        INFO(c.spec << ", " << T << " tokens, router scale " << routerScale);
        Problem p = makeProblem(l, T, routerScale, rng);
        body(l, **moe, p, routerScale);
      }
  }
}

} // namespace

TEST_CASE("routing: top-k ties go to the lower index, gates and aux loss",
          "[moe]") {
  // 3 tokens, 4 experts, top-2.
  const float logits[] = {1, 3, 3, 0, 0, 0, 0, 0, 2, 0, 1, 5};
  Routing r = routeTokens(logits, 3, 4, 2);
  CHECK(r.expert == std::vector<int32_t>{1, 2, 0, 1, 3, 0});
  CHECK(r.gate[0] == Approx(0.5 + 1e-6).epsilon(1e-7));
  CHECK(r.gate[1] == Approx(0.5 + 1e-6).epsilon(1e-7));
  CHECK(r.gate[2] == Approx(0.5 + 1e-6).epsilon(1e-7));
  // softmax(5, 2) = (1/(1+e^-3), 1/(1+e^3))
  CHECK(r.gate[4] == Approx(0.9525741268 + 1e-6).epsilon(1e-6));
  CHECK(r.gate[5] == Approx(0.0474258732 + 1e-6).epsilon(1e-5));
  CHECK(r.counts == std::vector<int64_t>{2, 2, 1, 1});
  // aux by hand: p̂ = mean softmax rows; f̂ = counts / 6; lse² mean.
  auto sm = [](std::vector<double> l) {
    double s = 0;
    for (double v : l)
      s += std::exp(v);
    for (double &v : l)
      v = std::exp(v) / s;
    return std::make_pair(l, std::log(s));
  };
  auto [p0, l0] = sm({1, 3, 3, 0});
  auto [p1, l1] = sm({0, 0, 0, 0});
  auto [p2, l2] = sm({2, 0, 1, 5});
  const double f[4] = {2 / 6.0, 2 / 6.0, 1 / 6.0, 1 / 6.0};
  double bal = 0;
  for (int e = 0; e < 4; ++e)
    bal += (p0[e] + p1[e] + p2[e]) / 3 * f[e];
  CHECK(l1 == Approx(std::log(4.0)));
  CHECK(
      r.auxLoss ==
      Approx(4 * bal + 0.1 * (l0 * l0 + l1 * l1 + l2 * l2) / 3).epsilon(1e-12));
  // Entropy of token 1 is ln 4; the mean is over the three tokens.
  double h = 0;
  for (auto *p : {&p0, &p1, &p2})
    for (double v : *p)
      h -= v * std::log(v) / 3;
  CHECK(r.entropy == Approx(h).epsilon(1e-12));
}

TEST_CASE("BTT-MoE forward and backward match the all-experts reference",
          "[moe]") {
  std::mt19937 rng(7);
  // g = 4 in-blocks of a = 4, f = 3 out-blocks of e = 4, 4 experts, top-2.
  Layer l = namedLayer("btt-moe(experts=4, top_k=2, in_blocks=4, out_blocks=3)",
                       16, 12);
  auto moe = MoeLayer::compile(l);
  REQUIRE(moe);
  const double auxWeight = 0.5;
  for (double routerScale : {1.0, 0.0}) {
    INFO("router scale " << routerScale);
    Problem p = makeProblem(l, 13, routerScale, rng);
    auto x = toFloat(p.x), wg = toFloat(p.wg), w1 = toFloat(p.w1),
         w2 = toFloat(p.w2), dy = toFloat(p.dy);
    auto fwd =
        (*moe)->forward(x.data(), p.T, wg.data(), {w1.data(), w2.data()});
    REQUIRE(fwd);
    Reference ref = reference(p);
    CHECK(fwd->routing.counts == ref.counts);
    CHECK(fwd->routing.auxLoss == Approx(ref.aux).epsilon(1e-6));
    double maxRef = 0, maxErr = 0;
    for (size_t i = 0; i < ref.y.size(); ++i) {
      maxRef = std::max(maxRef, std::fabs(ref.y[i]));
      maxErr = std::max(maxErr, std::fabs(ref.y[i] - fwd->y[i]));
    }
    CHECK(maxErr <= 1e-5 * maxRef);

    auto g = (*moe)->backward(x.data(), dy.data(), p.T, wg.data(),
                              {w1.data(), w2.data()}, auxWeight);
    REQUIRE(g);
    checkGradient(p, &Problem::x, g->dx, auxWeight, "dx");
    // With a zero router every logit ties: any change to Wg flips the
    // selection, so the loss has no derivative there to compare with.
    if (routerScale != 0)
      checkGradient(p, &Problem::wg, g->dRouter, auxWeight, "dWg");
    checkGradient(p, &Problem::w1, g->dw[0], auxWeight, "dW1");
    checkGradient(p, &Problem::w2, g->dw[1], auxWeight, "dW2");
    if (routerScale == 0) {
      // Zero-initialised router: every logit ties, so every token takes
      // experts 0 and 1; experts 2 and 3 get no tokens and zero gradients.
      CHECK(fwd->routing.counts == std::vector<int64_t>{13, 13, 0, 0});
      const EinsumTerm &t = l.terms[0];
      const std::string &a = t.weights[0];
      const int64_t inner = t.extent(a.substr(a.find('r') + 1));
      for (size_t i = 0; i < g->dw[0].size(); ++i)
        if (int64_t(i) / inner % 4 >= 2)
          REQUIRE(g->dw[0][i] == 0.0f);
    }
  }
}

TEST_CASE("BTT-MoE refuses layers without a rank letter of the expert count",
          "[moe]") {
  Layer l = namedLayer("btt(rank=2)", 16, 16);
  CHECK_FALSE(MoeLayer::compile(l));
  l.experts = 2, l.topK = 3;
  auto m = MoeLayer::compile(l);
  REQUIRE_FALSE(m);
  CHECK(m.error().find("top_k = 3") != std::string::npos);
}

TEST_CASE("the lowered moe_layer (one compiled function) matches the "
          "reference",
          "[moe]") {
  forEachLoweredProblem(11, [&](const Layer &l, MoeLayer &moe, Problem &p,
                                double routerScale) {
    const int64_t T = p.T;
    auto x = toFloat(p.x), wg = toFloat(p.wg), w1 = toFloat(p.w1),
         w2 = toFloat(p.w2);
    std::vector<float> y(size_t(T * l.dOut), -1.0f), grouped(y.size()),
        logits(size_t(T * l.experts));
    auto aux =
        moe.forwardLowered(x.data(), T, wg.data(), {w1.data(), w2.data()},
                           y.data(), logits.data());
    REQUIRE(aux);
    Reference ref = reference(p);
    CHECK(*aux == Approx(ref.aux).epsilon(1e-6));
    for (int64_t tok = 0; tok < T; ++tok) // logits = x · router
      for (int64_t e = 0; e < l.experts; ++e) {
        double want = 0;
        for (int64_t i = 0; i < l.dIn; ++i)
          want +=
              p.x[size_t(tok * l.dIn + i)] * p.wg[size_t(i * l.experts + e)];
        REQUIRE(logits[size_t(tok * l.experts + e)] ==
                Approx(want).margin(1e-5));
      }
    double maxRef = 0, maxErr = 0;
    for (size_t i = 0; i < ref.y.size(); ++i) {
      maxRef = std::max(maxRef, std::fabs(ref.y[i]));
      maxErr = std::max(maxErr, std::fabs(ref.y[i] - y[i]));
    }
    CHECK(maxErr <= 1e-5 * maxRef);
    // The routing loops do routeTokens' arithmetic and the experts run
    // the same compiled rank-1 chain in the same order as the grouped
    // path: the same bits (gates off by 1e-6 would show here).
    auto r = moe.forwardGrouped(x.data(), T, wg.data(), {w1.data(), w2.data()},
                                grouped.data());
    REQUIRE(r);
    CHECK(*aux == float(r->auxLoss));
    CHECK(y == grouped);
    // forwardInto: the lowered function on token chunks (3 threads of
    // at least 5 tokens), statistics of the whole batch.
    moe.setThreads(3, 5);
    std::vector<float> chunked(y.size(), -1.0f);
    auto routed = moe.forwardInto(x.data(), T, wg.data(),
                                  {w1.data(), w2.data()}, chunked.data());
    REQUIRE(routed);
    CHECK(chunked == y);
    CHECK(routed->counts == ref.counts);
    CHECK(routed->auxLoss == r->auxLoss);
  });
}

TEST_CASE("the lowered moe_layer_grad matches the grouped backward, across "
          "chunks, and finite differences",
          "[moe]") {
  const double auxWeight = 0.5;
  forEachLoweredProblem(
      13, [&](const Layer &l, MoeLayer &moe, Problem &p, double routerScale) {
        const int64_t T = p.T;
        auto x = toFloat(p.x), wg = toFloat(p.wg), w1 = toFloat(p.w1),
             w2 = toFloat(p.w2), dy = toFloat(p.dy);
        auto run = [&](int threads) {
          moe.setThreads(threads, 5);
          auto g = moe.backward(x.data(), dy.data(), T, wg.data(),
                                {w1.data(), w2.data()}, auxWeight);
          REQUIRE(g);
          return std::move(*g);
        };
        // One chunk: the compiled function does everything, aux included;
        // three: the aux term is added from the whole batch's routing.
        auto whole = run(1), chunked = run(3);
        auto grouped = moe.backwardGrouped(x.data(), dy.data(), T, wg.data(),
                                           {w1.data(), w2.data()}, auxWeight);
        REQUIRE(grouped);
        auto close = [](const std::vector<float> &a,
                        const std::vector<float> &b, const char *what) {
          INFO(what);
          REQUIRE(a.size() == b.size());
          double maxAbs = 0, maxErr = 0;
          for (size_t i = 0; i < a.size(); ++i) {
            maxAbs = std::max(maxAbs, double(std::fabs(b[i])));
            const double err = std::fabs(double(a[i]) - double(b[i]));
            if (!(err <= maxErr)) // a NaN sticks
              maxErr = err;
          }
          CHECK(maxErr <= 1e-5 * std::max(1.0, maxAbs));
        };
        for (auto *g : {&whole, &chunked}) {
          close(g->dx, grouped->dx, "dx");
          close(g->dRouter, grouped->dRouter, "dRouter");
          close(g->dw[0], grouped->dw[0], "dW1");
          close(g->dw[1], grouped->dw[1], "dW2");
          CHECK(g->routing.counts == grouped->routing.counts);
        }
        // Idle experts' slices stay exactly zero in the lowered path too.
        for (size_t i = 0; i < whole.dw[0].size(); ++i)
          if (grouped->dw[0][i] == 0.0f)
            REQUIRE(whole.dw[0][i] == 0.0f);
        // Into the caller's buffers, which hold stale values (NaN): each
        // is overwritten, by both paths, whole or in chunks.
        for (int threads : {1, 3}) {
          moe.setThreads(threads, 5);
          for (bool lowered : {true, false}) {
            const float nan = std::numeric_limits<float>::quiet_NaN();
            std::vector<float> dx(x.size(), nan), dwg(wg.size(), nan),
                dw1(w1.size(), nan), dw2(w2.size(), nan);
            MoeLayer::GradientBuffers into{
                dx.data(), dwg.data(), {dw1.data(), dw2.data()}};
            auto r =
                lowered
                    ? moe.backwardInto(x.data(), dy.data(), T, wg.data(),
                                       {w1.data(), w2.data()}, auxWeight, into)
                    : moe.backwardGroupedInto(x.data(), dy.data(), T, wg.data(),
                                              {w1.data(), w2.data()}, auxWeight,
                                              into);
            REQUIRE(r);
            INFO("threads " << threads
                            << (lowered ? ", lowered" : ", grouped"));
            close(dx, grouped->dx, "dx into");
            close(dwg, grouped->dRouter, "dRouter into");
            close(dw1, grouped->dw[0], "dW1 into");
            close(dw2, grouped->dw[1], "dW2 into");
            CHECK(r->counts == grouped->routing.counts);
          }
        }
        if (T == 13 && routerScale != 0) {
          checkGradient(p, &Problem::x, chunked.dx, auxWeight, "dx");
          checkGradient(p, &Problem::wg, chunked.dRouter, auxWeight, "dWg");
          checkGradient(p, &Problem::w1, chunked.dw[0], auxWeight, "dW1");
          checkGradient(p, &Problem::w2, chunked.dw[1], auxWeight, "dW2");
        }
      });
}
