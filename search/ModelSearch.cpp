#include "ModelSearch.h"
#include "Checked.h"

#include <cmath>
#include <numeric>
#include <fmt/format.h>

namespace einstruct {

int64_t budgetFromRatio(const std::vector<ModelLayer> &layers, double ratio) {
  double dense = 0;
  for (const auto &l : layers)
    dense += double(l.dIn) * double(l.dOut) * double(l.count);
  return int64_t(ratio * dense);
}

Result<ModelResult> searchModel(const std::vector<ModelLayer> &layers,
                                int64_t budgetFlops, const SearchSpace &base,
                                const Constraints &k, int buckets) {
  if (layers.empty())
    return Error{"the model has no layers"};
  if (budgetFlops < 1)
    return Error{"the MAC budget must be positive"};
  ModelResult result;
  result.budgetFlops = budgetFlops;
  // Per layer: the Pareto front (fewest MACs, most params) of what it allows.
  std::vector<std::vector<Candidate>> options;
  for (const auto &l : layers) {
    if (l.count < 1)
      return Error{fmt::format("layer '{}': count must be >= 1", l.name)};
    SearchSpace s = base;
    s.dIn = l.dIn;
    s.dOut = l.dOut;
    auto all = enumerate(s);
    if (!all)
      return Error{fmt::format("layer '{}': {}", l.name, all.error())};
    auto allowed = rank(std::move(*all), k, Objective{});
    std::vector<Candidate> preferred, front;
    for (auto &c : allowed)
      if (isPreferred(c.analysis))
        preferred.push_back(c);
    auto &pool = preferred.empty() ? allowed : preferred;
    markPareto(pool);
    for (auto &c : pool)
      if (c.paretoParams)
        front.push_back(c);
    if (front.empty())
      return Error{fmt::format("layer '{}' ({}x{}): no structure meets the "
                               "constraints",
                               l.name, l.dIn, l.dOut)};
    options.push_back(std::move(front));
    auto dense = checkedMul(l.dIn, l.dOut);
    auto denseAll = dense ? checkedMul(*dense, l.count) : std::nullopt;
    if (!denseAll)
      return Error{fmt::format("layer '{}': size overflows", l.name)};
    result.denseFlops += *denseAll;
    result.denseParams += *denseAll;
  }
  // Multiple-choice knapsack over MAC units. With the gcd of all costs as
  // the unit the DP is exact; only when that needs too many buckets are
  // costs rounded up to budget/buckets (the budget still holds).
  int64_t g = 0;
  for (size_t i = 0; i < layers.size(); ++i)
    for (auto &c : options[i])
      g = std::gcd(g, c.analysis.flops * layers[i].count);
  double unit = double(budgetFlops) / buckets;
  if (g > 0 && budgetFlops / g <= 200000) {
    buckets = int(budgetFlops / g);
    unit = double(g);
  }
  const double NEG = -INFINITY;
  std::vector<double> best(buckets + 1, NEG);
  best[0] = 0;
  std::vector<std::vector<int>> choice(layers.size(),
                                       std::vector<int>(buckets + 1, -1));
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<double> next(buckets + 1, NEG);
    for (size_t o = 0; o < options[i].size(); ++o) {
      const Analysis &a = options[i][o].analysis;
      double cost = double(a.flops) * double(layers[i].count);
      int units = int(std::ceil(cost / unit - 1e-9));
      if (units > buckets)
        continue;
      double gain = double(a.params) * double(layers[i].count);
      for (int b = 0; b + units <= buckets; ++b) {
        if (best[b] == NEG)
          continue;
        if (best[b] + gain > next[b + units]) {
          next[b + units] = best[b] + gain;
          choice[i][b + units] = int(o);
        }
      }
    }
    // Remember where each state came from: the predecessor bucket is implied
    // by the option's units, so only the option index is stored.
    best = std::move(next);
  }
  int end = -1;
  for (int b = 0; b <= buckets; ++b)
    if (best[b] != NEG && (end < 0 || best[b] > best[end]))
      end = b;
  if (end < 0)
    return Error{fmt::format(
        "no combination fits {} MACs per token; the cheapest structures "
        "allowed need more",
        budgetFlops)};
  std::vector<ModelChoice> picks(layers.size());
  for (size_t i = layers.size(); i-- > 0;) {
    int o = choice[i][end];
    const Candidate &c = options[i][o];
    picks[i] = {layers[i], c};
    double cost = double(c.analysis.flops) * double(layers[i].count);
    end -= int(std::ceil(cost / unit - 1e-9));
  }
  for (auto &p : picks) {
    result.totalFlops += p.pick.analysis.flops * p.layer.count;
    result.totalParams += p.pick.analysis.params * p.layer.count;
  }
  result.choices = std::move(picks);
  return result;
}

} // namespace einstruct
