// θ → integer sizes: the reference's rounding and padding rule, and exact
// factorisations checked against a brute-force search.
#include "search/Layer.h"

#include <catch2/catch.hpp>
#include <cmath>

using namespace einstruct;

TEST_CASE("rounding refuses padding above 15%", "[sizing]") {
  // 1000^0.5 = 31.6 -> 32·32 = 1024 pads 2.4%: accepted.
  Theta btt{{0.5, 0, 0.5, 0, 0.5, 0.5, 0}};
  auto ok = sizesFromTheta(btt, 1000, 1000, Sizing::Round);
  REQUIRE(ok);
  CHECK((*ok)[kAlpha] == 32);
  // 24^0.5 = 4.9 -> 5·5 = 25 (4%); 6^(1/2) = 2.449 -> 2·2 = 4 pads 33%.
  auto bad = sizesFromTheta(btt, 6, 1000, Sizing::Round);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error(), Catch::Contains("pads d_in 6 -> 4 (33.3%)"));
}

TEST_CASE("exact sizing never pads and is the nearest factorisation",
          "[sizing]") {
  Theta t{{0.33, 0, 0.67, 0, 0.67, 0.33, 0}};
  auto s = sizesFromTheta(t, 768, 3072, Sizing::Exact);
  REQUIRE(s);
  CHECK((*s)[kAlpha] * (*s)[kBeta] * (*s)[kGamma] == 768);
  CHECK((*s)[kDelta] * (*s)[kEpsilon] * (*s)[kPhi] == 3072);
  // Brute force: no factorisation a·g = 768 is nearer θ in log space.
  auto cost = [](int64_t a, int64_t g, double ta, double tg, double d) {
    double x = std::log(double(a)) - ta * std::log(d);
    double y = std::log(double(g)) - tg * std::log(d);
    return x * x + y * y;
  };
  double mine = cost((*s)[kAlpha], (*s)[kGamma], 0.33, 0.67, 768);
  for (int64_t a = 1; a <= 768; ++a)
    if (768 % a == 0)
      CHECK(mine <= cost(a, 768 / a, 0.33, 0.67, 768) + 1e-12);
  CHECK((*s)[kAlpha] == 8);
  CHECK((*s)[kGamma] == 96);
}

TEST_CASE("a zero exponent forces size 1 in exact mode", "[sizing]") {
  auto f = nearestFactorization(4096, {0.5, 0, 0.5});
  CHECK(f == std::array<int64_t, 3>{64, 1, 64});
  auto prime = nearestFactorization(769, {0.5, 0, 0.5});
  CHECK(prime[0] * prime[2] == 769);
  CHECK(prime[1] == 1);
}

TEST_CASE("divisors are complete and sorted", "[sizing]") {
  CHECK(divisors(36) == std::vector<int64_t>{1, 2, 3, 4, 6, 9, 12, 18, 36});
  CHECK(divisors(1) == std::vector<int64_t>{1});
  CHECK(divisors(97) == std::vector<int64_t>{1, 97});
}

TEST_CASE("dimensions outside [1, 2^40] are refused", "[sizing][errors]") {
  Theta t{{1, 0, 0, 0, 0, 1, 0}};
  CHECK_FALSE(sizesFromTheta(t, 0, 16, Sizing::Round));
  CHECK_FALSE(sizesFromTheta(t, 16, (int64_t(1) << 40) + 1, Sizing::Exact));
  auto l = layerFromTheta(t, int64_t(1) << 40, int64_t(1) << 40, Sizing::Round);
  REQUIRE(l);
  auto a = analyze(*l); // 2^80 parameters: must not wrap
  REQUIRE_FALSE(a);
  CHECK_THAT(a.error(), Catch::Contains("overflows 64 bits"));
}
