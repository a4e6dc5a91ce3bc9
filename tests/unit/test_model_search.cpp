// Model-level search: the total budget holds, and the knapsack is optimal
// (checked against exhaustive search over the per-layer fronts).
#include "search/ModelSearch.h"

#include <catch2/catch.hpp>

using namespace einstruct;

TEST_CASE("model search respects the total budget and is optimal",
          "[model]") {
  std::vector<ModelLayer> layers = {
      {"qkv", 64, 192, 2}, {"proj", 64, 64, 2}, {"up", 64, 256, 1}};
  int64_t dense = 2 * 64 * 192 + 2 * 64 * 64 + 64 * 256;
  SearchSpace base;
  base.grid = 6;
  Constraints k;
  int solved = 0;
  for (double ratio : {0.1, 0.25, 0.5, 0.75}) {
    int64_t budget = int64_t(ratio * double(dense));
    auto r = searchModel(layers, budget, base, k);
    // Exhaustive: every combination of each layer's preferred-class options.
    std::vector<std::vector<Analysis>> opts;
    for (auto &l : layers) {
      SearchSpace s = base;
      s.dIn = l.dIn;
      s.dOut = l.dOut;
      std::vector<Analysis> o;
      auto all = enumerate(s); // named: a range-for over *enumerate(s) dangles
      REQUIRE(all);
      for (auto &c : *all)
        if (isPreferred(c.analysis))
          o.push_back(c.analysis);
      opts.push_back(o);
    }
    int64_t best = -1;
    for (auto &a : opts[0])
      for (auto &b : opts[1])
        for (auto &c : opts[2]) {
          int64_t f = 2 * a.flops + 2 * b.flops + c.flops;
          int64_t p = 2 * a.params + 2 * b.params + c.params;
          if (f <= budget)
            best = std::max(best, p);
        }
    INFO("ratio " << ratio);
    if (best < 0) {
      // Nothing in the preferred class fits: the search must say so.
      REQUIRE_FALSE(r);
      CHECK_THAT(r.error(), Catch::Contains("no combination fits"));
      continue;
    }
    REQUIRE(r);
    CHECK(r->totalFlops <= budget);
    CHECK(r->denseFlops == dense);
    CHECK(r->totalParams == best);
    ++solved;
  }
  CHECK(solved >= 2);
}

TEST_CASE("model search errors", "[model][errors]") {
  SearchSpace base;
  Constraints k;
  CHECK_THAT(searchModel({}, 100, base, k).error(),
             Catch::Contains("no layers"));
  CHECK_THAT(searchModel({{"x", 64, 64, 1}}, 10, base, k).error(),
             Catch::Contains("no combination fits 10 MACs"));
  CHECK_THAT(searchModel({{"x", 1, 64, 1}}, 1000, base, k).error(),
             Catch::Contains("layer 'x': d_in = 1"));
}
