// ‖got − want‖ / ‖want‖ (Frobenius), failing the current test when an
// element of `got` was never written (NaN-poisoned outputs stay NaN).
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace einstruct::testing {

inline double relErr(const std::vector<float> &got,
                     const std::vector<float> &want) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(std::isfinite(got[i])); // every element written
    num += (got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

} // namespace einstruct::testing
