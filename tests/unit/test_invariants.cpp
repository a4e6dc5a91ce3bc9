// Invariants of ω/ψ/ν against exact counts on a few hundred random valid θ:
// with d = 2^(12m) and θ on the 1/12 grid every size is an exact power of two,
// so log_d(flops) → 1+ν, log_d(params) → 1+ν−ω and log_d(rank) → ψ.
#include "search/Layer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;

namespace {
// A random θ on the 1/12 grid satisfying both sums and validity.
Theta randomValidTheta(std::mt19937 &rng) {
  std::uniform_int_distribution<int> u(0, 12);
  while (true) {
    int a = u(rng), b = u(rng);
    if (a + b > 12)
      continue;
    int d = u(rng), e = u(rng);
    if (d + e > 12)
      continue;
    int r = u(rng);
    Theta t{{a / 12.0, b / 12.0, (12 - a - b) / 12.0, d / 12.0, e / 12.0,
             (12 - d - e) / 12.0, r / 12.0}};
    if (validityProblem(t).empty())
      return t;
  }
}
} // namespace

TEST_CASE("log_d of exact counts approaches 1+ν and 1+ν−ω", "[invariants]") {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 300; ++trial) {
    Theta t = randomValidTheta(rng);
    INFO("θ = " << t.str());
    auto x = taxonomy(t);
    double prevFlopsGap = INFINITY;
    for (int m : {1, 2, 3}) {
      int64_t d = int64_t(1) << (12 * m);
      if ((1 + x.nu) * 12 * m + 1 > 62)
        continue; // keep flops inside 64 bits
      auto l = layerFromTheta(t, d, d, Sizing::Round);
      REQUIRE(l);
      auto a = analyze(*l);
      REQUIRE(a);
      CHECK(a->paddedIn == d); // powers of two: no padding
      double logd = std::log(double(d));
      // flops and params are sums of two powers of d: within a factor 2.
      double flopsGap = std::log(double(a->flops)) / logd - (1 + x.nu);
      double paramsGap =
          std::log(double(a->params)) / logd - (1 + x.nu - x.omega);
      CHECK(flopsGap >= -1e-9);
      CHECK(flopsGap <= std::log(2.0) / logd + 1e-9);
      CHECK(paramsGap >= -1e-9);
      CHECK(paramsGap <= std::log(2.0) / logd + 1e-9);
      CHECK(flopsGap <= prevFlopsGap + 1e-12);
      prevFlopsGap = flopsGap;
      // The min-cut rank bound is never above ψ's prediction.
      double rankExp = std::log(double(a->rankBound)) / logd;
      CHECK(rankExp <= x.psi + 1e-9);
    }
  }
}

TEST_CASE("ψ = 1 exactly when the structure is full rank by the cut bound",
          "[invariants]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Theta t = randomValidTheta(rng);
    auto l = layerFromTheta(t, 4096, 4096, Sizing::Round);
    REQUIRE(l);
    auto a = analyze(*l);
    REQUIRE(a);
    INFO("θ = " << t.str());
    if (taxonomy(t).psi >= 1 - 1e-12)
      CHECK(a->rankBound == 4096);
    else
      CHECK(a->rankBound < 4096);
  }
}
