// How `einstruct run` times a compiled call: one untimed call first (the
// buffer pool's first allocations, cold caches), then `repeat` timed ones.
#pragma once
#include "search/Result.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace einstruct::cli {

using Clock = std::chrono::steady_clock;
inline double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The untimed call's ms and the timed calls' median.
struct Timing {
  double warmUpMs = 0, medianMs = 0;
  size_t calls = 0;
};
template <class Call> Result<Timing> timedCalls(int repeat, Call &&call) {
  Timing t;
  std::vector<double> times;
  for (int r = -1; r < repeat; ++r) {
    auto s = Clock::now();
    if (auto ok = call(); !ok)
      return Error{ok.error()};
    (r < 0 ? t.warmUpMs : times.emplace_back()) = msSince(s);
  }
  std::sort(times.begin(), times.end());
  t.medianMs = times[times.size() / 2];
  t.calls = times.size();
  return t;
}

} // namespace einstruct::cli
