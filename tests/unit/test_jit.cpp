// The CPU JIT against the brute-force dense matrix of each structure: every
// named structure, random θ (exact and padded sizes), odd sizes, batch 1 and
// a large batch.
#include "compiler/cpu/JitLayer.h"
#include "tests/unit/BruteForce.h"
#include "tests/unit/CompiledLayer.h"
#include "tests/unit/NamedLayer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;
using einstruct::testing::denseMatrix;
using einstruct::testing::compiledLayer;
using einstruct::testing::randomWeights;
using einstruct::testing::namedLayer;

namespace {

// Max |jit − reference| / max |reference| for one compiled layer and batch.
double relativeError(const JitLayer &jit, int64_t batch, std::mt19937 &rng) {
  const Layer &l = jit.layer();
  auto [weights, wp] = randomWeights(jit, rng);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(size_t(batch * l.dIn));
  for (auto &v : x)
    v = u(rng);
  auto y = jit.forward(x.data(), batch, wp);
  REQUIRE(y);
  // Reference: sum over terms of (dense matrix of the term) · x, with the
  // input zero-padded/cut and the output cut/zero-padded as the op says.
  std::vector<double> ref(size_t(batch * l.dOut), 0.0);
  size_t w0 = 0;
  for (const auto &t : l.terms) {
    std::vector<std::vector<double>> ws;
    for (size_t k = 0; k < t.weights.size(); ++k)
      ws.emplace_back(weights[w0 + k].begin(), weights[w0 + k].end());
    w0 += t.weights.size();
    auto m = denseMatrix(t, ws);
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t o = 0; o < std::min(t.outDim(), l.dOut); ++o)
        for (int64_t i = 0; i < std::min(t.inDim(), l.dIn); ++i)
          ref[size_t(n * l.dOut + o)] += m[o][i] * x[size_t(n * l.dIn + i)];
  }
  double err = 0, scale = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    err = std::max(err, std::fabs((*y)[k] - ref[k]));
    scale = std::max(scale, std::fabs(ref[k]));
  }
  return err / scale;
}

} // namespace

TEST_CASE("JIT forward equals the brute-force matrix for every named "
          "structure",
          "[jit]") {
  std::mt19937 rng(3);
  struct Case {
    const char *spec;
    int64_t dIn, dOut;
  } cases[] = {
      {"dense", 30, 42},          {"low-rank(5)", 36, 20},
      {"kronecker", 36, 48},      {"tt(rank=3)", 24, 36},
      {"btt(rank=2)", 30, 42},    {"monarch(6)", 36, 42},
      {"block-diagonal(3)", 27, 33}, {"dyad(4, IT)", 32, 48},
      {"dyad(4, OT)", 32, 48},    {"dyad(4, DT)", 32, 48},
      {"btt-moe(experts=4, top_k=2)", 16, 24},
  };
  for (auto &c : cases) {
    auto jit = compiledLayer(namedLayer(c.spec, c.dIn, c.dOut));
    for (int64_t batch : {1, 7, 130}) {
      INFO(c.spec << " " << c.dIn << "->" << c.dOut << " batch " << batch);
      CHECK(relativeError(*jit, batch, rng) < 1e-5);
    }
  }
}

TEST_CASE("JIT micro-kernels (register tiles, vector transposes) for AVX2 "
          "and AVX-512 shapes",
          "[jit]") {
  // Sizes whose innermost extents are multiples of 8 or 16, so the register
  // tiles, their row remainders (batch 7, 43, 130 against 6 or 8 rows a
  // tile and 36-, 32- or 96-row batch tiles) and both transpose paths (in
  // registers where both extents divide the lanes, blocked loops otherwise)
  // all run; each shape is forced, so both are checked on any host.
  std::mt19937 rng(6);
  struct Case {
    const char *spec;
    int64_t dIn, dOut;
  } cases[] = {
      {"monarch(4)", 64, 64},   {"monarch(8)", 128, 128},
      {"monarch(16)", 256, 256}, {"btt(rank=2)", 256, 512},
      {"low-rank(16)", 64, 96}, {"dense", 64, 48},
      {"kronecker", 64, 256},   {"dyad(4, OT)", 64, 64},
      {"tt(rank=8)", 64, 64},
      // A weight panel past 64 KB: cache-blocked (96-row batch tiles, the
      // summed 1100 in blocks of 341 or 170 with a partial last one).
      {"dense", 1100, 96},
  };
  for (VectorUnits units : {kAvx2, kAvx512})
    for (auto &c : cases) {
      auto jit = compiledLayer(namedLayer(c.spec, c.dIn, c.dOut), units);
      for (int64_t batch : {1, 7, 43, 130}) {
        INFO(c.spec << " " << c.dIn << "->" << c.dOut << " batch " << batch
                    << " lanes " << units.lanes);
        CHECK(relativeError(*jit, batch, rng) < 1e-5);
      }
    }
}

TEST_CASE("JIT forward on random θ, exact and padded sizes", "[jit]") {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> u(0, 6);
  int done = 0;
  for (int trial = 0; trial < 200 && done < 24; ++trial) {
    int a = u(rng), b = u(rng), d = u(rng), e = u(rng), r = u(rng) / 2;
    if (a + b > 6 || d + e > 6)
      continue;
    Theta t{{a / 6.0, b / 6.0, (6 - a - b) / 6.0, d / 6.0, e / 6.0,
             (6 - d - e) / 6.0, r / 6.0}};
    if (!validityProblem(t).empty())
      continue;
    bool padded = done % 2;
    auto l = layerFromTheta(t, padded ? 50 : 48, padded ? 70 : 72,
                            padded ? Sizing::Round : Sizing::Exact);
    if (!l)
      continue; // rounding beyond the reference's 15 %
    INFO("θ = " << t.str() << (padded ? " rounded" : " exact"));
    CHECK(relativeError(*compiledLayer(*l), 3, rng) < 1e-5);
    ++done;
  }
  CHECK(done >= 16);
}
