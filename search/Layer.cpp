#include "Layer.h"
#include "Checked.h"

#include <cmath>
#include <fmt/format.h>

namespace einstruct {

std::string recogniseFamily(const ClassSizes &s) {
  auto one = [&](std::initializer_list<int> cs) {
    for (int c : cs)
      if (s[c] != 1)
        return false;
    return true;
  };
  if (one({kBeta, kGamma, kDelta, kEpsilon, kRho}))
    return "dense";
  if (one({kBeta, kGamma, kDelta, kPhi}))
    return "low-rank";
  if (one({kBeta, kDelta}))
    return s[kRho] == 1 && s[kGamma] > 1 && s[kPhi] > 1 ? "monarch" : "btt";
  if (one({kGamma, kPhi}) && !one({kBeta}) && !one({kDelta}))
    return s[kRho] == 1 ? "kronecker" : "tt";
  return "generic";
}

int64_t elementCount(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::vector<std::vector<int64_t>> weightShapes(const Layer &layer) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto &t : layer.terms)
    for (const auto &w : t.weights)
      shapes.push_back(t.shape(w));
  return shapes;
}

Result<Layer> layerFromTheta(const Theta &t, int64_t dIn, int64_t dOut,
                             Sizing mode) {
  auto checked = checkTheta(t);
  if (!checked)
    return Error{checked.error()};
  auto s = sizesFromTheta(t, dIn, dOut, mode);
  if (!s)
    return Error{s.error()};
  Layer l;
  l.dIn = dIn;
  l.dOut = dOut;
  l.terms = {termFromClassSizes(*s)};
  l.theta = t;
  l.sizing = mode == Sizing::Exact ? "exact" : "round";
  l.name = recogniseFamily(*s);
  return l;
}

Result<Layer> layerFromTerms(std::vector<EinsumTerm> terms,
                             std::optional<int64_t> dIn,
                             std::optional<int64_t> dOut) {
  if (terms.empty())
    return Error{"a layer needs at least one term"};
  Layer l;
  l.dIn = dIn.value_or(terms[0].inDim());
  l.dOut = dOut.value_or(terms[0].outDim());
  for (size_t k = 0; k < terms.size(); ++k) {
    if (terms[k].inDim() != terms[0].inDim() ||
        terms[k].outDim() != terms[0].outDim())
      return Error{fmt::format(
          "term {} maps {} -> {} but term 1 maps {} -> {}; all terms of a sum "
          "must have the same shape",
          k + 1, terms[k].inDim(), terms[k].outDim(), terms[0].inDim(),
          terms[0].outDim())};
  }
  for (auto [name, d] : {std::pair{"d_in", l.dIn}, std::pair{"d_out", l.dOut}})
    if (d < 1 || d > kMaxDim)
      return Error{fmt::format("{} = {} is outside [1, 2^40]", name, d)};
  l.terms = std::move(terms);
  if (l.terms.size() == 1) {
    if (auto s = classify(l.terms[0]))
      l.name = recogniseFamily(*s);
    else if (l.terms[0].weights.size() == 1)
      l.name = l.terms[0].extent([&] {
                 std::string blocks;
                 for (char c : l.terms[0].input)
                   if (l.terms[0].output.find(c) != std::string::npos)
                     blocks += c;
                 return blocks;
               }()) > 1
                   ? "block-diagonal"
                   : "dense";
    else
      l.name = "generic";
  } else {
    l.name = "sum";
  }
  return l;
}

// ω, ν and ψ read off exact counts: flops ≈ d^{1+ν}, params ≈ d^{1+ν-ω},
// rank ≈ min(d_in, d_out)^ψ, with d the geometric mean of d_in and d_out.
static std::optional<Taxonomy> metricsFromCounts(const Analysis &a) {
  if (a.dIn < 2 || a.dOut < 2)
    return std::nullopt;
  double logd = 0.5 * (std::log(double(a.dIn)) + std::log(double(a.dOut)));
  Taxonomy m;
  m.nu = std::log(double(a.flops)) / logd - 1;
  m.omega = std::log(double(a.flops) / double(a.params)) / logd;
  m.psi = std::log(double(a.rankBound)) /
          std::log(double(std::min(a.dIn, a.dOut)));
  return m;
}

Result<Analysis> analyze(const Layer &layer) {
  Analysis a;
  a.name = layer.name;
  a.dIn = layer.dIn;
  a.dOut = layer.dOut;
  a.paddedIn = layer.terms[0].inDim();
  a.paddedOut = layer.terms[0].outDim();
  long double rankSum = 0;
  for (const auto &t : layer.terms) {
    auto c = termCost(t);
    if (!c)
      return Error{c.error()};
    auto p = checkedAdd(a.params, c->params);
    auto f = checkedAdd(a.flops, c->flops);
    if (!p || !f)
      return Error{"cost of the sum of terms overflows 64 bits"};
    a.params = *p;
    a.flops = *f;
    rankSum += rankBound(t);
  }
  a.rankBound = int64_t(std::min<long double>(
      rankSum, std::min(std::min(a.dIn, a.dOut),
                        std::min(a.paddedIn, a.paddedOut))));
  if (layer.terms.size() == 1)
    a.classSizes = classify(layer.terms[0]);
  if (a.classSizes) {
    // The published cost formula fixes the order x·A then z·B.
    const auto &s = *a.classSizes;
    long double f1 = (long double)s[kPhi] * s[kDelta] * s[kRho] * s[kGamma] *
                     s[kBeta] * s[kAlpha];
    long double f2 = (long double)s[kPhi] * s[kEpsilon] * s[kDelta] * s[kRho] *
                     s[kGamma] * s[kBeta];
    if (f1 + f2 > (long double)INT64_MAX)
      return Error{"FLOP count overflows 64 bits"};
    a.flops = int64_t(f1) + int64_t(f2);
    a.theta = layer.theta ? *layer.theta
                          : thetaFromSizes(s, a.paddedIn, a.paddedOut);
    if (a.dIn >= 2 && a.dOut >= 2) {
      a.metrics = taxonomy(*a.theta);
      a.metricsFrom = "theta";
    }
    a.validity = validityProblem(*a.theta);
  }
  if (layer.experts > 0) {
    // Only top_k of the E ranks run per token; the router is a d_in×E GEMM.
    const auto &s = *a.classSizes;
    a.flopsAllExperts = a.flops;
    a.flops = a.flops / s[kRho] * layer.topK;
    a.routerParams = layer.dIn * layer.experts;
    a.routerFlops = a.routerParams;
    a.params += a.routerParams;
    a.flops += a.routerFlops;
    a.flopsAllExperts += a.routerFlops;
  }
  if (!a.metrics) {
    a.metrics = metricsFromCounts(a);
    if (a.metrics)
      a.metricsFrom = "counts";
  }
  if (layer.bias) // after the metrics: they describe the structured matrix
    a.params += layer.dOut;
  return a;
}

} // namespace einstruct
