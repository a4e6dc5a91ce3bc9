#include "Init.h"
#include "ClassStrides.h"

#include <cmath>

namespace einstruct {

namespace {

double coreStd(double fanIn, double fanOut) {
  return std::sqrt(std::min(fanIn, fanOut) / (fanIn * fanIn));
}

} // namespace

Result<std::vector<double>> initStd(const Layer &layer) {
  std::vector<double> out;
  for (const auto &t : layer.terms) {
    if (t.weights.size() == 1) {
      // Fan-in: the letters x and W share but y lacks (the block's input).
      double in = 1, outDim = 1;
      for (auto &[c, n] : t.sizes) {
        bool x = t.input.find(c) != std::string::npos;
        bool y = t.output.find(c) != std::string::npos;
        if (x && !y)
          in *= double(n);
        if (y && !x)
          outDim *= double(n);
      }
      out.push_back(coreStd(in, outDim));
      continue;
    }
    auto cs = classStrides(t);
    if (!cs)
      return Error{"no reference initialisation for '" + t.str() +
                   "': " + cs.error()};
    enum { a, b, g, d, e, f, r };
    const auto &s = cs->size;
    out.push_back(coreStd(double(s[a]), double(s[d] * s[f] * s[r])));
    out.push_back(coreStd(double(s[b] * s[g] * s[r]), double(s[e])));
  }
  return out;
}

} // namespace einstruct
