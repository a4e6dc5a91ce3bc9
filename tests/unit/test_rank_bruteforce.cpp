// Brute force: build the dense d_out×d_in matrix of small random structures by
// contracting the einsum naively, compute its rank by Gaussian elimination, and
// compare with the cut bound (and ψ where the prediction is tight).
#include "search/Layer.h"
#include "search/Named.h"
#include "tests/unit/BruteForce.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;
using einstruct::testing::denseMatrix;

namespace {

int64_t numericRank(std::vector<std::vector<double>> m) {
  size_t rows = m.size(), cols = m[0].size(), rank = 0;
  double scale = 0;
  for (auto &r : m)
    for (double v : r)
      scale = std::max(scale, std::fabs(v));
  double tol = scale * 1e-9 * double(std::max(rows, cols));
  for (size_t c = 0; c < cols && rank < rows; ++c) {
    size_t piv = rank;
    for (size_t r = rank; r < rows; ++r)
      if (std::fabs(m[r][c]) > std::fabs(m[piv][c]))
        piv = r;
    if (std::fabs(m[piv][c]) <= tol)
      continue;
    std::swap(m[piv], m[rank]);
    for (size_t r = rank + 1; r < rows; ++r) {
      double f = m[r][c] / m[rank][c];
      for (size_t k = c; k < cols; ++k)
        m[r][k] -= f * m[rank][k];
    }
    ++rank;
  }
  return int64_t(rank);
}

int64_t rankOf(const Layer &l, std::mt19937 &rng) {
  std::normal_distribution<double> n(0, 1);
  std::vector<std::vector<double>> sum;
  for (const auto &t : l.terms) {
    std::vector<std::vector<double>> w;
    for (auto &letters : t.weights) {
      w.emplace_back(t.extent(letters));
      for (auto &v : w.back())
        v = n(rng);
    }
    auto m = denseMatrix(t, w);
    if (sum.empty())
      sum = m;
    else
      for (size_t r = 0; r < m.size(); ++r)
        for (size_t c = 0; c < m[r].size(); ++c)
          sum[r][c] += m[r][c];
  }
  return numericRank(sum);
}

} // namespace

TEST_CASE("named structures: brute-force rank equals the bound",
          "[rank][bruteforce]") {
  std::mt19937 rng(1);
  struct Case {
    const char *spec;
    int64_t dIn, dOut, rank;
  } cases[] = {
      {"dense", 12, 20, 12},        {"low-rank(3)", 16, 16, 3},
      {"monarch(4)", 16, 16, 16},   {"btt(rank=2)", 16, 36, 16},
      {"kronecker", 16, 16, 16},    {"tt(rank=2)", 16, 16, 16},
      {"block-diagonal(4)", 16, 32, 16}, {"dyad(4, DT)", 16, 16, 16},
      {"dyad(4, IT)", 16, 16, 16},  {"dyad(4, OT)", 16, 16, 16},
  };
  for (auto &c : cases) {
    INFO(c.spec);
    auto n = parseNamed(c.spec);
    REQUIRE(n);
    auto l = buildNamed(*n, c.dIn, c.dOut);
    REQUIRE(l);
    auto a = analyze(*l);
    REQUIRE(a);
    CHECK(rankOf(*l, rng) == c.rank);
    CHECK(a->rankBound == c.rank);
  }
}

TEST_CASE("random θ: brute-force rank never exceeds the bound, and matches ψ "
          "where tight",
          "[rank][bruteforce]") {
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> u(0, 4);
  int checked = 0;
  for (int trial = 0; trial < 400 && checked < 60; ++trial) {
    // θ on the 1/4 grid at d = 16 gives exact power-of-two sizes.
    int a = u(rng), b = u(rng), d = u(rng), e = u(rng), r = u(rng);
    if (a + b > 4 || d + e > 4)
      continue;
    Theta t{{a / 4.0, b / 4.0, (4 - a - b) / 4.0, d / 4.0, e / 4.0,
             (4 - d - e) / 4.0, r / 4.0}};
    if (!validityProblem(t).empty())
      continue;
    auto l = layerFromTheta(t, 16, 16, Sizing::Round);
    REQUIRE(l);
    auto an = analyze(*l);
    REQUIRE(an);
    INFO("θ = " << t.str());
    int64_t rank = rankOf(*l, rng);
    CHECK(rank <= an->rankBound);
    // Random Gaussian cores attain the cut bound of a 2-core network.
    CHECK(rank == an->rankBound);
    // ψ predicts rank ≈ d^ψ; at d = 16 on this grid it is exact.
    CHECK(double(rank) == Approx(std::pow(16.0, taxonomy(t).psi)));
    ++checked;
  }
  CHECK(checked >= 30);
}
