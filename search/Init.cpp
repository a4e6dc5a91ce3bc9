#include "Init.h"
#include "ClassStrides.h"

#include <cmath>

namespace einstruct {

Result<std::vector<CoreFan>> coreFans(const Layer &layer) {
  std::vector<CoreFan> out;
  for (const auto &t : layer.terms) {
    if (t.weights.size() == 1) {
      // Fan-in: the letters x and W share but y lacks (the block's input).
      CoreFan fan;
      for (auto &[c, n] : t.sizes) {
        bool x = t.input.find(c) != std::string::npos;
        bool y = t.output.find(c) != std::string::npos;
        if (x && !y)
          fan.in *= double(n);
        if (y && !x)
          fan.out *= double(n);
      }
      out.push_back(fan);
      continue;
    }
    auto cs = classStrides(t);
    if (!cs)
      return Error{"no reference initialisation for '" + t.str() +
                   "': " + cs.error()};
    enum { a, b, g, d, e, f, r };
    const auto &s = cs->size;
    // BTT-MoE's cores are sized as one expert's, its rank-1 BTT (the
    // reference's "pretending they are rank 1").
    double rank = layer.experts > 0 ? 1 : double(s[r]);
    out.push_back({double(s[a]), double(s[d] * s[f]) * rank});
    out.push_back({double(s[b] * s[g]) * rank, double(s[e])});
  }
  return out;
}

Result<std::vector<double>> initStd(const Layer &layer) {
  auto fans = coreFans(layer);
  if (!fans)
    return Error{fans.error()};
  std::vector<double> out;
  for (const CoreFan &f : *fans)
    out.push_back(std::sqrt(std::min(f.in, f.out) / (f.in * f.in)));
  return out;
}

} // namespace einstruct
