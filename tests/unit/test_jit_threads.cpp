// The JIT on several threads: the batch split into row chunks run at once
// computes y and dx bit for bit as one thread does (rows are independent),
// and the weight gradients (chunk sums added in order) to rounding.
#include "compiler/cpu/JitLayer.h"
#include "tests/unit/CompiledLayer.h"
#include "tests/unit/NamedLayer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;
using einstruct::testing::compiledLayer;
using einstruct::testing::randomWeights;
using einstruct::testing::namedLayer;

TEST_CASE("JIT batch chunks on threads: y and dx bit-identical to one "
          "thread, weight gradients to rounding",
          "[jit][threads]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const char *spec : {"btt(rank=2)", "monarch(8)", "dyad(4, DT)"}) {
    auto jit = compiledLayer(namedLayer(spec, 64, 64));
    auto [weights, wp] = randomWeights(*jit, rng);
    for (int64_t batch : {1, 13, 100}) {
      std::vector<float> x(size_t(batch * 64)), dy(x.size());
      for (auto *v : {&x, &dy})
        for (auto &e : *v)
          e = u(rng);
      jit->setThreads(1);
      auto y1 = jit->forward(x.data(), batch, wp);
      auto g1 = jit->backward(x.data(), dy.data(), batch, wp);
      REQUIRE(y1);
      REQUIRE(g1);
      // Chunks of 5+ rows: boundaries inside register tiles and batch tiles.
      for (int threads : {2, 3, 7}) {
        INFO(spec << " batch " << batch << " threads " << threads);
        jit->setThreads(threads, 5);
        auto y = jit->forward(x.data(), batch, wp);
        auto g = jit->backward(x.data(), dy.data(), batch, wp);
        REQUIRE(y);
        REQUIRE(g);
        CHECK(*y == *y1);
        CHECK(g->dx == g1->dx);
        for (size_t k = 0; k < g->dw.size(); ++k) {
          double err = 0, scale = 0;
          for (size_t i = 0; i < g->dw[k].size(); ++i) {
            err = std::max(err, double(std::fabs(g->dw[k][i] - g1->dw[k][i])));
            scale = std::max(scale, double(std::fabs(g1->dw[k][i])));
          }
          CHECK(err <= 1e-5 * scale);
        }
      }
    }
  }
}
