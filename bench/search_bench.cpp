// Search performance: full default enumeration of one 4096×4096 layer, and a
// sweep of 100 shapes (enumerate + rank under a budget), single thread.
// Prints the median of several runs; this is a benchmark, not a test.
#include "search/Search.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

using namespace einstruct;
using Clock = std::chrono::steady_clock;

static double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main() {
  std::vector<double> enumTimes, richTimes;
  size_t count = 0, richCount = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    auto all = enumerate(SearchSpace{4096, 4096, 12, false, {}, {}});
    auto t1 = Clock::now();
    auto rich =
        enumerate(SearchSpace{4096, 4096, 12, true, {{8, 2}, {16, 2}}, {}});
    auto t2 = Clock::now();
    count = all->size();
    richCount = rich->size();
    enumTimes.push_back(seconds(t0, t1));
    richTimes.push_back(seconds(t1, t2));
  }
  std::printf("enumerate 4096x4096, grid 1/12, exact sizes: %zu structures, "
              "median %.3f s\n",
              count, median(enumTimes));
  std::printf("enumerate 4096x4096, + rounded sizes + MoE 8:2,16:2: %zu "
              "structures, median %.3f s\n",
              richCount, median(richTimes));

  // 100 shapes typical of transformer layers: d_model in 10 sizes × 10
  // output widths, each enumerated and ranked under 1/4 of dense MACs.
  std::vector<int64_t> dims = {256, 384, 512, 768, 1024, 1536, 2048, 2560,
                               3072, 4096};
  Constraints k;
  k.maxFlopsRatio = 0.25;
  std::vector<double> sweepTimes;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    size_t rows = 0;
    for (int64_t dIn : dims)
      for (int64_t dOut : dims) {
        auto all = enumerate(SearchSpace{dIn, dOut, 12, false, {}, {}});
        auto ranked = rank(std::move(*all), k, Objective{});
        rows += !ranked.empty();
      }
    sweepTimes.push_back(seconds(t0, Clock::now()));
    if (rows != 100)
      std::printf("warning: %zu of 100 shapes had a feasible structure\n",
                  rows);
  }
  std::printf("100-shape sweep (enumerate + rank, 1/4 dense MACs): median "
              "%.3f s\n",
              median(sweepTimes));
  return 0;
}
