// Dense → structured projection: matrices that already have the structure
// come back exactly (rebuilt by the brute-force einsum), and other matrices
// meet hand-computed optima.
#include "compiler/project/Projection.h"
#include "compiler/frontend/SpecReader.h"
#include "tests/unit/BruteForce.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;
using einstruct::testing::denseMatrix;

namespace {

Layer layerOf(SpecArgs args) {
  auto l = layerFromArgs(args);
  REQUIRE(l);
  return *l;
}

// The layer's d_out × d_in matrix from its weights (input cut/zero-padded,
// output cut/zero-filled, as the op defines padding).
NpyArray denseOf(const Layer &l, const std::vector<std::vector<double>> &w) {
  auto m = denseMatrix(l.terms[0], w);
  NpyArray out{{l.dOut, l.dIn}, {}};
  for (int64_t o = 0; o < l.dOut; ++o)
    for (int64_t i = 0; i < l.dIn; ++i)
      out.data.push_back(o < int64_t(m.size()) && i < int64_t(m[0].size())
                             ? float(m[size_t(o)][size_t(i)])
                             : 0.0f);
  return out;
}

std::vector<std::vector<double>> toDouble(const std::vector<NpyArray> &ws) {
  std::vector<std::vector<double>> out;
  for (auto &w : ws)
    out.emplace_back(w.data.begin(), w.data.end());
  return out;
}

} // namespace

TEST_CASE("projection recovers matrices that have the structure",
          "[project]") {
  std::mt19937 rng(11);
  std::normal_distribution<double> n(0, 1);
  std::vector<SpecArgs> specs(6);
  specs[0].structure = "monarch(8)", specs[0].dIn = 64, specs[0].dOut = 64;
  specs[1].structure = "btt(rank=2)", specs[1].dIn = 48, specs[1].dOut = 96;
  specs[2].structure = "low-rank(3)", specs[2].dIn = 20, specs[2].dOut = 14;
  specs[3].structure = "kronecker", specs[3].dIn = 24, specs[3].dOut = 36;
  // Permuted letters, every class > 1.
  specs[4].einsum = "abg,grfad,bfreg->fed";
  specs[4].sizes = "a=2,b=3,g=2,d=2,e=3,f=2,r=2";
  specs[5].structure = "block-diagonal(4)", specs[5].dIn = 32,
  specs[5].dOut = 16;
  for (auto &spec : specs) {
    Layer l = layerOf(spec);
    INFO(l.terms[0].str() << " " << l.terms[0].sizesStr());
    std::vector<std::vector<double>> w;
    for (auto &op : l.terms[0].weights) {
      w.emplace_back(size_t(l.terms[0].extent(op)));
      for (auto &v : w.back())
        v = n(rng);
    }
    NpyArray dense = denseOf(l, w);
    auto p = projectDense(l, dense);
    REQUIRE(p);
    CHECK(p->relativeError < 1e-5);
    CHECK(p->svdBound < 1e-5);
    // The factors rebuild the matrix (they need not equal w: SVD factors are
    // unique only up to scale and sign).
    NpyArray again = denseOf(l, toDouble(p->weights));
    double err = 0, norm = 0;
    for (size_t k = 0; k < dense.data.size(); ++k) {
      err += std::pow(double(again.data[k]) - dense.data[k], 2);
      norm += std::pow(double(dense.data[k]), 2);
    }
    CHECK(std::sqrt(err / norm) < 1e-5);
  }
}

TEST_CASE("projection meets hand-computed optima", "[project]") {
  SECTION("low-rank 1 of diag(3, 2, 1) keeps the 3") {
    SpecArgs s;
    s.structure = "low-rank(1)", s.dIn = 3, s.dOut = 3;
    NpyArray w{{3, 3}, {3, 0, 0, 0, 2, 0, 0, 0, 1}};
    auto p = projectDense(layerOf(s), w);
    REQUIRE(p);
    CHECK(p->relativeError == Approx(std::sqrt(5.0 / 14.0)).epsilon(1e-6));
    CHECK(p->svdBound == Approx(std::sqrt(5.0 / 14.0)).epsilon(1e-6));
  }
  SECTION("Kronecker of a sum of two orthogonal Kronecker products") {
    // W = 2·(I⊗J) + 1·(J⊗I) with I = diag(1,1), J = [[0,1],[1,0]]: the two
    // rearranged terms are orthogonal with σ = 2·2 and 1·2, so the best
    // single Kronecker product keeps the first: error² = 4 / (16 + 4).
    SpecArgs s;
    s.structure = "kronecker", s.dIn = 4, s.dOut = 4;
    Layer l = layerOf(s);
    REQUIRE(l.terms[0].sizes.size() == 4); // 2×2 ⊗ 2×2
    float I[2][2] = {{1, 0}, {0, 1}}, J[2][2] = {{0, 1}, {1, 0}};
    NpyArray w{{4, 4}, std::vector<float>(16)};
    for (int o1 = 0; o1 < 2; ++o1)
      for (int o2 = 0; o2 < 2; ++o2)
        for (int i1 = 0; i1 < 2; ++i1)
          for (int i2 = 0; i2 < 2; ++i2)
            w.data[size_t((o1 * 2 + o2) * 4 + i1 * 2 + i2)] =
                2 * I[o1][i1] * J[o2][i2] + J[o1][i1] * I[o2][i2];
    auto p = projectDense(l, w);
    REQUIRE(p);
    CHECK(p->relativeError == Approx(std::sqrt(4.0 / 20.0)).epsilon(1e-6));
  }
  SECTION("block-diagonal keeps the blocks and drops the rest") {
    SpecArgs s;
    s.structure = "block-diagonal(2)", s.dIn = 4, s.dOut = 4;
    NpyArray w{{4, 4}, {1, 2, 9, 9, 3, 4, 9, 9, 9, 9, 5, 6, 9, 9, 7, 8}};
    auto p = projectDense(layerOf(s), w);
    REQUIRE(p);
    double kept = 1 + 4 + 9 + 16 + 25 + 36 + 49 + 64, dropped = 8 * 81;
    CHECK(p->relativeError ==
          Approx(std::sqrt(dropped / (kept + dropped))).epsilon(1e-6));
    std::vector<float> blocks(p->weights[0].data);
    std::sort(blocks.begin(), blocks.end());
    CHECK(blocks == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  }
}

TEST_CASE("projection refusals name the reason", "[project]") {
  SpecArgs s;
  s.structure = "dyad(4, DT)", s.dIn = 16, s.dOut = 16;
  NpyArray w{{16, 16}, std::vector<float>(256, 1.0f)};
  auto p = projectDense(layerOf(s), w);
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("sums of terms"));
  s.structure = "monarch(4)";
  CHECK_THAT(projectDense(layerOf(s), NpyArray{{16, 8}, {}}).error(),
             Catch::Contains("must be (d_out = 16, d_in = 16)"));
  CHECK_THAT(projectDense(layerOf(s), NpyArray{{16, 16},
                                               std::vector<float>(256, 0)})
                 .error(),
             Catch::Contains("all zeros"));
}
