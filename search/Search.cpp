#include "Search.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <functional>
#include <map>
#include <unordered_set>

namespace einstruct {

namespace {

// Integer compositions i+j+k = n.
std::vector<std::array<int, 3>> compositions(int n) {
  std::vector<std::array<int, 3>> out;
  for (int i = 0; i <= n; ++i)
    for (int j = 0; i + j <= n; ++j)
      out.push_back({i, j, n - i - j});
  return out;
}

constexpr double kTiny = 1e-9;

} // namespace

namespace {

// One structure the space proposes: its sizes, how they were sized, and the
// grid point that produced them.
struct Point {
  Theta theta;
  ClassSizes sizes;
  const char *sizing;
  int64_t experts = 0, topK = 0;
};

// Calls `visit` on every point of the space, in a fixed order; stops early
// when `visit` returns false. Every 2^20 grid points it reports progress of
// pass `pass` of two (enumerate counts, then builds). The space is assumed
// checked (checkSpace).
void walk(const SearchSpace &s, int pass,
          const std::function<bool(const Point &)> &visit) {
  const int n = s.grid;
  auto comps = compositions(n);
  const int64_t points = countGridPoints(s);
  int64_t done = 0;
  auto step = [&] {
    if (s.progress && (++done & ((1 << 20) - 1)) == 0)
      s.progress(pass * points + done, 2 * points);
  };
  // Exact factorisations depend on one side's exponents only: cache them.
  std::map<std::array<int, 3>, std::array<int64_t, 3>> inCache, outCache;
  auto exact = [&](auto &cache, int64_t d, const std::array<int, 3> &c) {
    auto it = cache.find(c);
    if (it != cache.end())
      return it->second;
    auto f = nearestFactorization(d, {double(c[0]) / n, double(c[1]) / n,
                                      double(c[2]) / n});
    cache[c] = f;
    return f;
  };
  int64_t dMin = std::min(s.dIn, s.dOut);
  for (const auto &in : comps)
    for (const auto &out : comps)
      for (int r = 0; r <= n; ++r) {
        step();
        Theta t{{double(in[0]) / n, double(in[1]) / n, double(in[2]) / n,
                 double(out[0]) / n, double(out[1]) / n, double(out[2]) / n,
                 double(r) / n}};
        if (!validityProblem(t).empty())
          continue;
        auto fi = exact(inCache, s.dIn, in);
        auto fo = exact(outCache, s.dOut, out);
        int64_t rank = std::max<int64_t>(
            1, int64_t(std::nearbyint(std::pow(double(dMin), t[kRho]))));
        ClassSizes sizes{fi[0], fi[1], fi[2], fo[0], fo[1], fo[2], rank};
        if (!visit({t, sizes, "exact"}))
          return;
        if (s.includeRounded) {
          auto rs = sizesFromTheta(t, s.dIn, s.dOut, Sizing::Round);
          if (rs && *rs != sizes && !visit({t, *rs, "round"}))
            return;
        }
      }
  // BTT-MoE: BTT cores (β = δ = 0) whose rank index holds the experts.
  for (auto [experts, topK] : s.moe)
    for (const auto &in : comps)
      for (const auto &out : comps) {
        step();
        if (in[1] || out[0])
          continue;
        Theta t{{double(in[0]) / n, 0, double(in[2]) / n, 0,
                 double(out[1]) / n, double(out[2]) / n,
                 std::log(double(experts)) / std::log(double(dMin))}};
        auto fi = exact(inCache, s.dIn, in);
        auto fo = exact(outCache, s.dOut, out);
        ClassSizes sizes{fi[0], 1, fi[2], 1, fo[1], fo[2], experts};
        if (!visit({t, sizes, "exact", experts, topK}))
          return;
      }
}

Result<bool> checkSpace(const SearchSpace &s) {
  if (s.grid < 1 || s.grid > 48)
    return Error{fmt::format("grid = {} must be in [1, 48] (θ step 1/grid)",
                             s.grid)};
  for (auto [name, d] : {std::pair{"d_in", s.dIn}, std::pair{"d_out", s.dOut}})
    if (d < 2 || d > (int64_t(1) << 24))
      return Error{fmt::format("{} = {} is outside [2, 2^24] for search", name,
                               d)};
  for (auto [experts, topK] : s.moe)
    if (experts < 2 || topK < 1 || topK > experts)
      return Error{fmt::format("moe option {}:{} must have 1 <= top_k <= "
                               "experts and experts >= 2",
                               experts, topK)};
  return true;
}

struct SizesHash {
  size_t operator()(const std::pair<ClassSizes, int64_t> &k) const {
    size_t h = std::hash<int64_t>()(k.second);
    for (int64_t v : k.first)
      h = h * 1000003u ^ std::hash<int64_t>()(v);
    return h;
  }
};

} // namespace

int64_t countGridPoints(const SearchSpace &s) {
  const int64_t comps = int64_t(s.grid + 1) * (s.grid + 2) / 2;
  return comps * comps * (s.grid + 1 + int64_t(s.moe.size()));
}

Result<int64_t> countCandidates(const SearchSpace &s, int64_t stopPast) {
  if (auto ok = checkSpace(s); !ok)
    return Error{ok.error()};
  std::unordered_set<std::pair<ClassSizes, int64_t>, SizesHash> seen;
  walk(s, 0, [&](const Point &p) {
    seen.insert({p.sizes, p.experts});
    return int64_t(seen.size()) <= stopPast;
  });
  return int64_t(seen.size());
}

Result<std::vector<Candidate>> enumerate(const SearchSpace &s) {
  struct Done { // the last progress report, however enumerate returns
    const SearchSpace &s;
    ~Done() {
      if (s.progress)
        s.progress(2 * countGridPoints(s), 2 * countGridPoints(s));
    }
  } done{s};
  // Counted first (sizes only, a few dozen bytes each) so that a space too
  // large to hold is refused before any candidate is built.
  auto count = countCandidates(s, kMaxCandidates);
  if (!count)
    return Error{count.error()};
  if (*count > kMaxCandidates)
    return Error{fmt::format(
        "the space holds more than {} distinct structures (grid {}{}), more "
        "than a search keeps; use a coarser --grid{}",
        kMaxCandidates, s.grid,
        s.includeRounded ? " with rounded sizes" : "",
        s.includeRounded ? " or leave out --include-rounded" : "")};
  std::map<std::pair<ClassSizes, int64_t>, Candidate> unique; // (sizes, E)
  walk(s, 1, [&](const Point &p) {
    auto key = std::pair{p.sizes, p.experts};
    if (unique.count(key))
      return true;
    Candidate c;
    auto l = layerFromTerms({termFromClassSizes(p.sizes)}, s.dIn, s.dOut);
    if (!l)
      return true; // unreachable for sizes derived here
    c.layer = *l;
    c.layer.sizing = p.sizing;
    c.layer.experts = p.experts;
    c.layer.topK = p.topK;
    if (p.experts)
      c.layer.name = "btt-moe";
    c.gridTheta = p.theta;
    auto a = analyze(c.layer);
    if (!a || !a->validity.empty())
      return true; // overflowing or (after integer sizing) invalid
    c.analysis = *a;
    unique.emplace(key, std::move(c));
    return true;
  });
  std::vector<Candidate> all;
  all.reserve(unique.size());
  for (auto &[k, c] : unique)
    all.push_back(std::move(c));
  return all;
}

bool isPreferred(const Analysis &a) {
  return a.metrics && std::fabs(a.metrics->omega) < kTiny &&
         a.metrics->psi > 1 - kTiny;
}

std::string violation(const Candidate &c, const Constraints &k, int64_t dIn,
                      int64_t dOut) {
  const Analysis &a = c.analysis;
  if (k.maxFlops && a.flops > *k.maxFlops)
    return fmt::format("flops {} > max {}", a.flops, *k.maxFlops);
  if (k.maxFlopsRatio &&
      double(a.flops) > *k.maxFlopsRatio * double(dIn) * double(dOut) + kTiny)
    return fmt::format("flops ratio {:.4g} > max {:.4g}",
                       double(a.flops) / (double(dIn) * double(dOut)),
                       *k.maxFlopsRatio);
  if (k.maxParams && a.params > *k.maxParams)
    return fmt::format("params {} > max {}", a.params, *k.maxParams);
  if (k.minPsi && (!a.metrics || a.metrics->psi < *k.minPsi - kTiny))
    return fmt::format("ψ below {:.4g}", *k.minPsi);
  if (k.maxOmega && (!a.metrics || a.metrics->omega > *k.maxOmega + kTiny))
    return fmt::format("ω above {:.4g}", *k.maxOmega);
  if (!k.families.empty() &&
      std::find(k.families.begin(), k.families.end(), a.name) ==
          k.families.end())
    return fmt::format("family {} not selected", a.name);
  return "";
}

const std::vector<Device> &deviceTable() {
  // Dense bf16 tensor-core peaks and HBM bandwidths from the vendors' sheets.
  static const std::vector<Device> table = {
      {"h100-sxm", 989, 3.35}, {"h100-pcie", 756, 2.0},
      {"h200", 989, 4.8},      {"a100-80gb", 312, 2.039},
      {"a100-40gb", 312, 1.555}, {"l40s", 362, 0.864},
      {"rtx4090", 165, 1.008},
  };
  return table;
}

Result<Device> findDevice(const std::string &name) {
  std::string want = name == "h100" ? "h100-sxm" : name == "a100" ? "a100-80gb"
                                                                  : name;
  for (const auto &d : deviceTable())
    if (d.name == want)
      return d;
  std::vector<std::string> names;
  for (const auto &d : deviceTable())
    names.push_back(d.name);
  return Error{fmt::format("unknown device '{}'; known: {}", name,
                           fmt::join(names, ", "))};
}

Result<Objective> parseObjective(const std::string &kind,
                                 const std::string &device, int64_t tokens) {
  static const std::vector<std::string> kinds = {
      "paper", "flops", "params", "params-per-flop", "roofline"};
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    return Error{fmt::format("unknown objective '{}'; known: {}", kind,
                             fmt::join(kinds, ", "))};
  if (tokens < 1)
    return Error{fmt::format("tokens = {} must be positive", tokens)};
  Objective o;
  o.kind = kind;
  o.tokens = tokens;
  auto d = findDevice(device);
  if (!d)
    return Error{d.error()};
  o.device = *d;
  return o;
}

double rooflineSeconds(const Analysis &a, const Device &d, int64_t tokens) {
  // A fused kernel reads x and the weights and writes y once, in bf16.
  double flops = 2.0 * double(a.flops) * double(tokens);
  double bytes = 2.0 * (double(tokens) * double(a.dIn + a.dOut) +
                        double(a.params));
  return std::max(flops / (d.peakTflops * 1e12), bytes / (d.hbmTBs * 1e12));
}

void markPareto(std::vector<Candidate> &cs) {
  // Sweep by flops ascending (ties: better value first); a point is on the
  // front when its value beats every cheaper point's.
  auto front = [&](auto value, bool Candidate::*mark) {
    std::vector<size_t> idx(cs.size());
    for (size_t k = 0; k < idx.size(); ++k)
      idx[k] = k;
    std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) {
      if (cs[x].analysis.flops != cs[y].analysis.flops)
        return cs[x].analysis.flops < cs[y].analysis.flops;
      return value(cs[x]) > value(cs[y]);
    });
    double best = -INFINITY;
    int64_t bestFlops = -1;
    for (size_t k : idx) {
      double v = value(cs[k]);
      bool sameAsBest = cs[k].analysis.flops == bestFlops && v == best;
      cs[k].*mark = v > best || sameAsBest;
      if (v > best) {
        best = v;
        bestFlops = cs[k].analysis.flops;
      }
    }
  };
  front([](const Candidate &c) { return double(c.analysis.params); },
        &Candidate::paretoParams);
  front(
      [](const Candidate &c) {
        // ψ rounded so that float noise does not split equal ranks.
        return c.analysis.metrics
                   ? std::round(c.analysis.metrics->psi * 1e9) / 1e9
                   : -1.0;
      },
      &Candidate::paretoPsi);
}

std::vector<Candidate> rank(std::vector<Candidate> all, const Constraints &k,
                            const Objective &o) {
  std::vector<Candidate> cs;
  for (auto &c : all)
    if (violation(c, k, c.analysis.dIn, c.analysis.dOut).empty())
      cs.push_back(std::move(c));
  markPareto(cs);
  for (auto &c : cs) {
    const Analysis &a = c.analysis;
    double ratio = double(a.flops) / (double(a.dIn) * double(a.dOut));
    double ppf = double(a.params) / double(a.flops);
    bool preferred = isPreferred(a);
    std::string cost =
        fmt::format("{:.3g}% of dense MACs, {:.3g} params/MAC", 100 * ratio,
                    ppf);
    if (o.kind == "paper") {
      // Tier first (ω = 0 and ψ = 1 scale best), then params per MAC.
      c.score = (preferred ? 1e6 : 0) + ppf;
      c.why = fmt::format("{}; {}",
                          preferred ? "omega=0, psi=1 (full rank, no sharing)"
                                    : "outside omega=0, psi=1",
                          cost);
    } else if (o.kind == "flops") {
      c.score = -double(a.flops);
      c.why = fmt::format("{} MACs; {}", a.flops, cost);
    } else if (o.kind == "params") {
      c.score = double(a.params);
      c.why = fmt::format("{} params; {}", a.params, cost);
    } else if (o.kind == "params-per-flop") {
      c.score = ppf;
      c.why = cost;
    } else {
      double t = rooflineSeconds(a, o.device, o.tokens);
      c.score = -t;
      c.why = fmt::format("{:.4g} µs est. on {} for {} tokens; {}", t * 1e6,
                          o.device.name, o.tokens, cost);
    }
  }
  std::sort(cs.begin(), cs.end(), [](const Candidate &x, const Candidate &y) {
    if (x.score != y.score)
      return x.score > y.score;
    // Equal scores: more capacity, then less compute.
    if (x.analysis.params != y.analysis.params)
      return x.analysis.params > y.analysis.params;
    if (x.analysis.flops != y.analysis.flops)
      return x.analysis.flops < y.analysis.flops;
    if (x.analysis.classSizes != y.analysis.classSizes)
      return x.analysis.classSizes < y.analysis.classSizes;
    return x.layer.experts < y.layer.experts;
  });
  return cs;
}

} // namespace einstruct
