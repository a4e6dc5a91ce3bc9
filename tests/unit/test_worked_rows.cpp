// Every worked row of structures.md §2, from θ text through the reference's
// rounding to exact params, FLOPs and ω/ψ/ν.
#include "search/Layer.h"

#include <catch2/catch.hpp>

using namespace einstruct;

namespace {
struct Row {
  const char *name, *theta;
  int64_t dIn, dOut;
  ClassSizes sizes; // a b g d e f r
  int64_t params, flops;
  double omega, psi, nu;
  int64_t paddedIn, paddedOut;
  const char *family;
};

const Row rows[] = {
    {"dense", "(1|0|0|0|0|1|0)", 1024, 1024, {1024, 1, 1, 1, 1, 1024, 1},
     1049600, 1049600, 0, 1, 1, 1024, 1024, "dense"},
    {"BTT / Monarch", "(0.5|0|0.5|0|0.5|0.5|0)", 4096, 4096,
     {64, 1, 64, 1, 64, 64, 1}, 524288, 524288, 0, 1, 0.5, 4096, 4096,
     "monarch"},
    {"BTT rank 8", "(0.5|0|0.5|0|0.5|0.5|0.25)", 4096, 4096,
     {64, 1, 64, 1, 64, 64, 8}, 4194304, 4194304, 0, 1, 0.75, 4096, 4096,
     "btt"},
    {"low-rank", "(1|0|0|0|1|0|0.5)", 4096, 4096, {4096, 1, 1, 1, 4096, 1, 64},
     524288, 524288, 0, 0.5, 0.5, 4096, 4096, "low-rank"},
    {"Kronecker", "(0.5|0.5|0|0.5|0.5|0|0)", 4096, 4096,
     {64, 64, 1, 64, 64, 1, 1}, 8192, 524288, 0.5, 1, 0.5, 4096, 4096,
     "kronecker"},
    {"generic", "(0.5|0.25|0.25|0.25|0.5|0.25|0)", 4096, 4096,
     {64, 8, 8, 8, 64, 8, 1}, 65536, 524288, 0.25, 1, 0.5, 4096, 4096,
     "generic"},
    {"BTT, rounded", "(0.33|0|0.67|0|0.67|0.33|0)", 768, 3072,
     {9, 1, 86, 1, 217, 14, 1}, 272104, 272104, 0, 1, 0.67, 774, 3038,
     "monarch"},
};
} // namespace

TEST_CASE("structures.md worked rows", "[worked]") {
  for (const Row &row : rows) {
    SECTION(row.name) {
      auto theta = parseTheta(row.theta);
      REQUIRE(theta);
      auto layer = layerFromTheta(*theta, row.dIn, row.dOut, Sizing::Round);
      REQUIRE(layer);
      auto a = analyze(*layer);
      REQUIRE(a);
      REQUIRE(a->classSizes);
      CHECK(*a->classSizes == row.sizes);
      CHECK(a->params == row.params);
      CHECK(a->flops == row.flops);
      REQUIRE(a->metrics);
      CHECK(a->metrics->omega == Approx(row.omega).margin(1e-12));
      CHECK(a->metrics->psi == Approx(row.psi).margin(1e-12));
      CHECK(a->metrics->nu == Approx(row.nu).margin(1e-12));
      CHECK(a->paddedIn == row.paddedIn);
      CHECK(a->paddedOut == row.paddedOut);
      CHECK(a->name == row.family);
      CHECK(a->validity.empty());
    }
  }
}

TEST_CASE("the cost formula's equivalent form", "[worked]") {
  // flops = d_in·d_f·d_d·d_r + d_out·d_g·d_b·d_r when nothing is padded.
  for (const Row &row : rows) {
    if (row.paddedIn != row.dIn || row.paddedOut != row.dOut)
      continue;
    const auto &s = row.sizes;
    int64_t alt = row.dIn * s[kPhi] * s[kDelta] * s[kRho] +
                  row.dOut * s[kGamma] * s[kBeta] * s[kRho];
    CHECK(alt == row.flops);
  }
}
