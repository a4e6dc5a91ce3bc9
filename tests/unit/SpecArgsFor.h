// SpecArgs (what the CLI's flags fill in) for the three ways to name a
// layer, so tests build layers through the same reader as users.
#pragma once
#include "compiler/frontend/SpecReader.h"

namespace einstruct::testing {

inline SpecArgs thetaArgs(const char *t, int64_t dIn, int64_t dOut,
                          const char *sizing = "round") {
  SpecArgs a;
  a.theta = t;
  a.dIn = dIn;
  a.dOut = dOut;
  a.sizing = sizing;
  return a;
}

inline SpecArgs namedArgs(const char *s, int64_t dIn, int64_t dOut) {
  SpecArgs a;
  a.structure = s;
  a.dIn = dIn;
  a.dOut = dOut;
  return a;
}

// d_in / d_out other than the structure's pad or truncate it.
inline SpecArgs einsumArgs(const char *e, const char *sizes,
                           std::optional<int64_t> dIn = {},
                           std::optional<int64_t> dOut = {}) {
  SpecArgs a;
  a.einsum = e;
  a.sizes = sizes;
  a.dIn = dIn;
  a.dOut = dOut;
  return a;
}

} // namespace einstruct::testing
