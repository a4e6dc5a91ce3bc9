// µP learning-rate multipliers (search/Mup.h) against a transcription of the
// einsum-search reference's rule (nn/cola_nn.py: compute_lr_mult(d_in, d_out,
// core.d_in, core.d_out) / num_mats × dense mult, with the cores' d_in from
// learning/fns.py get_core_bmm_dims: α for the first core, β·γ·ρ for the
// second).
#include "search/Init.h"
#include "search/Mup.h"
#include "search/Theta.h"
#include "tests/unit/NamedLayer.h"

#include <catch2/catch.hpp>

using namespace einstruct;

namespace {

// The reference's multipliers of a θ layer with sizes (α, β, γ, δ, ε, φ, ρ).
std::vector<double> referenceMults(const std::array<int64_t, 7> &v,
                                   int64_t dIn, double dense) {
  auto [a, b, g, d, e, f, r] = v;
  (void)d, (void)e, (void)f;
  double first = double(a), second = double(b * g * r);
  return {dense * (double(dIn) / first) / 2, dense * (double(dIn) / second) / 2};
}

Layer thetaLayer(const char *theta, int64_t dIn, int64_t dOut) {
  auto t = parseTheta(theta);
  REQUIRE(t);
  auto l = layerFromTheta(*t, dIn, dOut, Sizing::Round);
  REQUIRE(l);
  return *l;
}

} // namespace

TEST_CASE("µP multipliers of θ layers are the reference's", "[mup]") {
  struct Case {
    const char *theta;
    int64_t dIn, dOut;
    std::array<int64_t, 7> sizes; // a, b, g, d, e, f, r (structures.md §2)
  };
  // The worked rows of structures.md §2 and a rectangular one.
  const Case cases[] = {
      {"(0.5|0|0.5|0|0.5|0.5|0)", 4096, 4096, {64, 1, 64, 1, 64, 64, 1}},
      {"(0.5|0|0.5|0|0.5|0.5|0.25)", 4096, 4096, {64, 1, 64, 1, 64, 64, 8}},
      {"(1|0|0|0|1|0|0.5)", 4096, 4096, {4096, 1, 1, 1, 4096, 1, 64}},
      {"(0.5|0.5|0|0.5|0.5|0|0)", 4096, 4096, {64, 64, 1, 64, 64, 1, 1}},
      {"(0.5|0.25|0.25|0.25|0.5|0.25|0)", 4096, 4096, {64, 8, 8, 8, 64, 8, 1}},
      {"(0.5|0|0.5|0|0.5|0.5|0)", 256, 1024, {16, 1, 16, 1, 32, 32, 1}},
  };
  for (const auto &c : cases) {
    INFO(c.theta << " " << c.dIn << "x" << c.dOut);
    Layer l = thetaLayer(c.theta, c.dIn, c.dOut);
    for (double dense : {1.0, 0.25}) {
      auto got = lrMultipliers(l, dense);
      REQUIRE(got);
      auto want = referenceMults(c.sizes, c.dIn, dense);
      REQUIRE(got->size() == 2);
      CHECK((*got)[0] == Approx(want[0]));
      CHECK((*got)[1] == Approx(want[1]));
    }
  }
  // BTT rank 8 by hand: d_in/α/2 = 32 and d_in/(γ·ρ)/2 = 4.
  auto r8 = lrMultipliers(thetaLayer(cases[1].theta, 4096, 4096), 1);
  CHECK((*r8)[0] == Approx(32));
  CHECK((*r8)[1] == Approx(4));
}

TEST_CASE("µP: dense factors, one-weight layers, bias and router", "[mup]") {
  // A dense weight scaled from a base width of 64 to 256: 64/256.
  CHECK(denseLrMultiplier(64, 256) == Approx(0.25));
  CHECK(denseLrMultiplier(8, 8) == Approx(1));
  // A dense layer is one core with the layer's fan-in: the dense factor.
  auto dense = lrMultipliers(testing::namedLayer("dense", 256, 1024), 0.25);
  REQUIRE(dense);
  REQUIRE(dense->size() == 1);
  CHECK((*dense)[0] == Approx(0.25));
  // Block-diagonal with 4 blocks: fan-in 64 of 256, one core: 4 × factor.
  auto bd = lrMultipliers(testing::namedLayer("block-diagonal(blocks=4)", 256,
                                              256),
                          0.5);
  REQUIRE(bd);
  CHECK((*bd)[0] == Approx(0.5 * 256 / 64));
  // A bias is a vector (1); the BTT-MoE router a matrix at the dense factor,
  // and its cores are sized as one expert's (rank 1).
  Layer moe = testing::namedLayer("btt-moe(experts=8, top_k=2)", 1024, 1024);
  moe.bias = true;
  auto m = lrMultipliers(moe, 0.5);
  REQUIRE(m);
  REQUIRE(m->size() == 4);
  auto fans = coreFans(moe);
  REQUIRE(fans);
  CHECK((*fans)[0].in == Approx(32));  // a
  CHECK((*fans)[1].in == Approx(32));  // g, ρ counted once
  CHECK((*m)[0] == Approx(0.5 * 1024 / 32 / 2));
  CHECK((*m)[1] == Approx(0.5 * 1024 / 32 / 2));
  CHECK((*m)[2] == Approx(0.5));
  CHECK((*m)[3] == Approx(1));
}
