// BTT-MoE on the CPU, side by side in one process (one thread unless told):
//   routed       MoeLayer::forwardInto: the layer lowered by
//                --einstruct-lower-moe into one compiled function (router,
//                top-k, grouping, each expert's rank-1 BTT on its own tokens
//                only, combine), plus the routing statistics
//   grouped      MoeLayer::forwardGrouped: the same algorithm orchestrated in
//                C++, one compiled rank-1 layer call per expert
//   all-experts  MoeLayer::forwardAllExperts: the published way, every expert
//                on every token, outputs multiplied by the (sparse) gate
// Same JIT'd expert kernel in both, so the ratio is what routing buys. A
// second table times the backward (aux weight 0.01):
//   routed       MoeLayer::backwardInto: einstruct.moe_layer_grad (from
//                --einstruct-autodiff) lowered into one compiled function,
//                on token chunks
//   grouped      MoeLayer::backwardGroupedInto: per expert, compiled rank-1
//                forward and backward calls orchestrated in C++
// both into gradient buffers allocated once.
// Outputs and gradients are cross-checked before anything is printed.
//   moe_cpu_bench [TOKENS=1024] [REPEATS=3] [THREADS=1]
#include "bench/BenchTiming.h"
#include "compiler/cpu/MoeLayer.h"
#include "search/Named.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace einstruct;
using einstruct::bench::maxRelDiff;
using einstruct::bench::medianMs;

int main(int argc, char **argv) {
  const int64_t tokens = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  std::printf("| structure | d | tokens | routed ms | grouped ms | all-experts ms | "
              "speedup routed | speedup grouped | 0.8·E/k |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  struct Case {
    const char *spec;
    int64_t d, experts, topK;
  } cases[] = {{"btt-moe(experts=8, top_k=2)", 1024, 8, 2},
               {"btt-moe(experts=8, top_k=2)", 2048, 8, 2},
               {"btt-moe(experts=16, top_k=2)", 1024, 16, 2}};
  std::vector<std::string> backwardRows;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const Case &c : cases) {
    auto named = parseNamed(c.spec);
    auto layer = named ? buildNamed(*named, c.d, c.d) : Result<Layer>(Error{named.error()});
    if (!layer) {
      std::fprintf(stderr, "%s\n", layer.error().c_str());
      return 1;
    }
    auto moe = MoeLayer::compile(*layer);
    if (!moe) {
      std::fprintf(stderr, "%s\n", moe.error().c_str());
      return 1;
    }
    (*moe)->setThreads(threads);
    auto fill = [&](size_t n) {
      std::vector<float> v(n);
      for (auto &x : v)
        x = u(rng);
      return v;
    };
    auto shapes = weightShapes(*layer);
    auto count = [](const std::vector<int64_t> &s) {
      size_t n = 1;
      for (int64_t d : s)
        n *= size_t(d);
      return n;
    };
    auto x = fill(size_t(tokens * c.d)), wg = fill(size_t(c.d * c.experts)),
         w1 = fill(count(shapes[0])), w2 = fill(count(shapes[1]));
    std::vector<const float *> w = {w1.data(), w2.data()};
    // Both write into the caller's y, allocated once.
    std::vector<float> routed(size_t(tokens * c.d)), dense(routed.size()),
        grouped(routed.size());
    double tr = medianMs(
        [&] {
          (*moe)->forwardInto(x.data(), tokens, wg.data(), w, routed.data());
        },
        repeats, 1);
    double tg = medianMs(
        [&] {
          (*moe)->forwardGrouped(x.data(), tokens, wg.data(), w,
                                 grouped.data());
        },
        repeats, 1);
    double td = medianMs(
        [&] {
          (*moe)->forwardAllExperts(x.data(), tokens, wg.data(), w,
                                    dense.data());
        },
        repeats, 1);
    const double err =
        std::max(maxRelDiff(routed, dense), maxRelDiff(grouped, dense));
    if (err > 1e-4) {
      std::fprintf(stderr, "%s: routed/grouped and all-experts differ by %g\n",
                   c.spec, err);
      return 1;
    }
    std::printf("| %s | %lld | %lld | %.1f | %.1f | %.1f | %.2fx | %.2fx | "
                "%.1fx |\n",
                c.spec, (long long)c.d, (long long)tokens, tr, tg, td, td / tr,
                td / tg,
                0.8 * double(c.experts) / double(c.topK));
    auto dy = fill(size_t(tokens * c.d));
    // Both write into gradient buffers allocated once, as the C ABI's.
    struct Grads {
      std::vector<float> dx, dRouter, dw1, dw2;
      MoeLayer::GradientBuffers buffers() {
        return {dx.data(), dRouter.data(), {dw1.data(), dw2.data()}};
      }
    };
    auto zeros = [](size_t n) { return std::vector<float>(n); };
    Grads gr{zeros(x.size()), zeros(wg.size()), zeros(w1.size()),
             zeros(w2.size())},
        gg = gr;
    Result<Routing> okr = Error{""}, okg = Error{""};
    double br = medianMs(
        [&] {
          okr = (*moe)->backwardInto(x.data(), dy.data(), tokens, wg.data(), w,
                                     0.01, gr.buffers());
        },
        repeats, 1);
    double bg = medianMs(
        [&] {
          okg = (*moe)->backwardGroupedInto(x.data(), dy.data(), tokens,
                                            wg.data(), w, 0.01, gg.buffers());
        },
        repeats, 1);
    if (!okr || !okg) {
      std::fprintf(stderr, "%s: backward failed: %s\n", c.spec,
                   (okr ? okg.error() : okr.error()).c_str());
      return 1;
    }
    double gerr =
        std::max({maxRelDiff(gr.dx, gg.dx), maxRelDiff(gr.dRouter, gg.dRouter),
                  maxRelDiff(gr.dw1, gg.dw1), maxRelDiff(gr.dw2, gg.dw2)});
    if (gerr > 1e-4) {
      std::fprintf(stderr, "%s: routed and grouped gradients differ by %g\n",
                   c.spec, gerr);
      return 1;
    }
    char row[256];
    std::snprintf(row, sizeof row, "| %s | %lld | %lld | %.1f | %.1f | %.2fx |\n",
                  c.spec, (long long)c.d, (long long)tokens, br, bg, bg / br);
    backwardRows.push_back(row);
  }
  std::printf("\n| structure | d | tokens | routed backward ms | grouped "
              "backward ms | speedup |\n|---|---|---|---|---|---|\n");
  for (const auto &r : backwardRows)
    std::printf("%s", r.c_str());
  return 0;
}
