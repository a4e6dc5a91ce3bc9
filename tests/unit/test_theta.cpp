// θ text parsing, its errors, validity and the taxonomy.
#include "search/Theta.h"

#include <catch2/catch.hpp>
#include <cmath>

using namespace einstruct;

TEST_CASE("θ text parses decimals, fractions, spaces", "[theta]") {
  auto t = parseTheta(" ( 1/3 | 0 | 2/3 | 0 | 0.5 | 0.5 | 0 ) ");
  REQUIRE(t);
  CHECK((*t)[kAlpha] == Approx(1.0 / 3));
  CHECK((*t)[kGamma] == Approx(2.0 / 3));
  CHECK((*t)[kPhi] == 0.5);
  auto bare = parseTheta("0.5|0|0.5|0|0.5|0.5|0");
  REQUIRE(bare);
  CHECK(bare->str() == "(0.5|0|0.5|0|0.5|0.5|0)");
}

TEST_CASE("θ text errors name the field and column", "[theta][errors]") {
  struct Bad {
    const char *text, *expect;
  } bad[] = {
      {"(0.5|0|0.5|0|0.5|0.5)", "6 fields, expected 7"},
      {"(0.5|0|0.5|0|0.5|0.5|0|0)", "more than 7 fields"},
      {"(0.5|0|0.6|0|0.5|0.5|0)", "θα+θβ+θγ = 1.1"},
      {"(0.5|0|0.5|0|0.5|0.6|0)", "θδ+θε+θφ = 1.1"},
      {"(1.5|-0.5|0|0|0.5|0.5|0)", "θα = 1.5 is outside [0, 1]"},
      {"(0.5|0|nan|0|0.5|0.5|0)", "θγ is not a finite number"},
      {"(0.5|0|x|0|0.5|0.5|0)", "θγ (field 3, column 8): 'x' is not a number"},
      {"(0.5|0||0|0.5|0.5|0)", "θγ (field 3, column 8): empty number"},
      {"(0.5|0|0.5|0|0.5|0.5|0", "unbalanced parenthesis at column 1"},
      {"(0.5|0|1/0|0|0.5|0.5|0)", "division by zero"},
      {"", "θ text is empty"},
  };
  for (auto &b : bad) {
    INFO(b.text);
    auto t = parseTheta(b.text);
    REQUIRE_FALSE(t);
    CHECK_THAT(t.error(), Catch::Contains(b.expect));
  }
}

TEST_CASE("sum tolerance is the reference's 1e-2", "[theta]") {
  CHECK(parseTheta("(0.33|0|0.66|0|0.67|0.33|0)"));  // 0.99
  CHECK_FALSE(parseTheta("(0.33|0|0.65|0|0.67|0.33|0)")); // 0.98
}

TEST_CASE("validity flags redundant and degenerate θ", "[theta]") {
  // min(θα, θε) < min(θβ, θδ)
  Theta redundant{{0.25, 0.5, 0.25, 0.5, 0.25, 0.25, 0}};
  CHECK_THAT(validityProblem(redundant), Catch::Contains("redundant"));
  // θρ > min(θα, θε)
  Theta degenerate{{0.25, 0, 0.75, 0, 0.5, 0.5, 0.5}};
  CHECK_THAT(validityProblem(degenerate), Catch::Contains("degenerate"));
  CHECK(validityProblem(Theta{{0.5, 0, 0.5, 0, 0.5, 0.5, 0.25}}).empty());
}

TEST_CASE("taxonomy of dense drawn either way is (0, 1, 1)", "[theta]") {
  for (Theta t : {Theta{{1, 0, 0, 0, 0, 1, 0}}, Theta{{0, 0, 1, 0, 0, 1, 0}}}) {
    auto x = taxonomy(t);
    CHECK(x.omega == 0);
    CHECK(x.psi == 1);
    CHECK(x.nu == 1);
  }
}
