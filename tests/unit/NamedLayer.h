// A named structure (search/Named.h) built for d_in × d_out, failing the
// current test when the text or the sizes are refused.
#pragma once
#include "search/Named.h"

#include <catch2/catch.hpp>

namespace einstruct::testing {

inline Layer namedLayer(const char *spec, int64_t dIn, int64_t dOut) {
  auto n = parseNamed(spec);
  REQUIRE(n);
  auto l = buildNamed(*n, dIn, dOut);
  REQUIRE(l);
  return *l;
}

} // namespace einstruct::testing
