// What the CPU benchmarks share: median wall time of repeated calls, and the
// cross-check of two outputs before anything is printed.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace einstruct::bench {

// Median milliseconds of `reps` calls of fn, after `warmups` untimed ones
// (first-touch page faults, cold caches).
template <class F> double medianMs(F &&fn, int reps, int warmups = 0) {
  using Clock = std::chrono::steady_clock;
  for (int k = 0; k < warmups; ++k)
    fn();
  std::vector<double> t;
  for (int k = 0; k < reps; ++k) {
    auto a = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// max |a − b| / max |b|.
inline double maxRelDiff(const std::vector<float> &a,
                         const std::vector<float> &b) {
  double err = 0, scale = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    err = std::max(err, double(std::fabs(a[k] - b[k])));
    scale = std::max(scale, double(std::fabs(b[k])));
  }
  return err / scale;
}

} // namespace einstruct::bench
