// Structure search: completeness against a brute-force listing, constraints,
// Pareto marks checked pairwise, objectives.
#include "search/Search.h"

#include <catch2/catch.hpp>
#include <set>

using namespace einstruct;

namespace {
// Every valid θ on the grid, sized exactly, as a set of (sizes) — written
// independently of enumerate(): all 7-tuples of grid values, filtered.
std::set<ClassSizes> bruteForce(int64_t dIn, int64_t dOut, int n) {
  std::set<ClassSizes> out;
  for (int a = 0; a <= n; ++a)
    for (int b = 0; b <= n; ++b)
      for (int g = 0; g <= n; ++g)
        for (int d = 0; d <= n; ++d)
          for (int e = 0; e <= n; ++e)
            for (int f = 0; f <= n; ++f)
              for (int r = 0; r <= n; ++r) {
                if (a + b + g != n || d + e + f != n)
                  continue;
                Theta t{{double(a) / n, double(b) / n, double(g) / n,
                         double(d) / n, double(e) / n, double(f) / n,
                         double(r) / n}};
                if (!validityProblem(t).empty())
                  continue;
                auto s = sizesFromTheta(t, dIn, dOut, Sizing::Exact);
                REQUIRE(s);
                // Integer sizing can break validity; those are dropped too.
                if (!validityProblem(thetaFromSizes(*s, dIn, dOut)).empty())
                  continue;
                out.insert(*s);
              }
  return out;
}
} // namespace

TEST_CASE("enumeration is complete and duplicate-free", "[search]") {
  for (auto [dIn, dOut, n] : {std::tuple{64, 64, 6}, std::tuple{36, 96, 4},
                              std::tuple{60, 60, 12}}) {
    SearchSpace s;
    s.dIn = dIn;
    s.dOut = dOut;
    s.grid = n;
    auto all = enumerate(s);
    REQUIRE(all);
    std::set<ClassSizes> got;
    for (auto &c : *all) {
      CHECK(got.insert(*c.analysis.classSizes).second); // no duplicates
      CHECK(c.analysis.paddedIn == dIn);                // exact: no padding
      CHECK(c.analysis.paddedOut == dOut);
    }
    CHECK(got == bruteForce(dIn, dOut, n));
  }
}

TEST_CASE("rounded sizes add the reference's padded structures", "[search]") {
  SearchSpace s{768, 3072, 12, true, {}, {}};
  auto all = enumerate(s);
  REQUIRE(all);
  bool padded = false;
  for (auto &c : *all)
    padded |= c.analysis.paddedIn != 768 || c.analysis.paddedOut != 3072;
  CHECK(padded);
}

TEST_CASE("every ranked candidate satisfies its constraints", "[search]") {
  SearchSpace s{1024, 4096, 12, true, {{8, 2}}, {}};
  auto all = enumerate(s);
  REQUIRE(all);
  Constraints k;
  k.maxFlopsRatio = 0.1;
  k.maxParams = 2'000'000;
  k.minPsi = 0.9;
  k.maxOmega = 0.25;
  Objective o;
  auto ranked = rank(*all, k, o);
  REQUIRE_FALSE(ranked.empty());
  size_t kept = 0;
  for (auto &c : *all)
    kept += violation(c, k, 1024, 4096).empty();
  CHECK(ranked.size() == kept);
  for (auto &c : ranked) {
    CHECK(double(c.analysis.flops) <= 0.1 * 1024 * 4096);
    CHECK(c.analysis.params <= 2'000'000);
    CHECK(c.analysis.metrics->psi >= 0.9 - 1e-9);
    CHECK(c.analysis.metrics->omega <= 0.25 + 1e-9);
  }
  Constraints fam;
  fam.families = {"monarch", "btt-moe"};
  for (auto &c : rank(*all, fam, o))
    CHECK((c.analysis.name == "monarch" || c.analysis.name == "btt-moe"));
}

TEST_CASE("Pareto marks agree with a pairwise brute force", "[search]") {
  SearchSpace s{256, 256, 8, false, {}, {}};
  auto all = enumerate(s);
  REQUIRE(all);
  auto cs = *all;
  markPareto(cs);
  int onFront = 0;
  for (auto &c : cs) {
    bool dominated = false, psiDominated = false;
    for (auto &d : cs) {
      auto &x = c.analysis, &y = d.analysis;
      if (y.flops <= x.flops && y.params >= x.params &&
          (y.flops < x.flops || y.params > x.params))
        dominated = true;
      double px = x.metrics->psi, py = y.metrics->psi;
      if (y.flops <= x.flops && py >= px - 1e-9 &&
          (y.flops < x.flops || py > px + 1e-9))
        psiDominated = true;
    }
    CHECK(c.paretoParams == !dominated);
    CHECK(c.paretoPsi == !psiDominated);
    onFront += c.paretoParams;
  }
  CHECK(onFront >= 3);
}

TEST_CASE("objectives order as documented", "[search]") {
  SearchSpace s{4096, 4096, 12, false, {}, {}};
  auto all = enumerate(s);
  REQUIRE(all);
  Constraints k;
  k.maxFlopsRatio = 1.0 / 8;
  // The paper's preference puts ω=0, ψ=1 first, then params per MAC.
  auto paper = rank(*all, k, Objective{});
  CHECK(paper.front().analysis.metrics->omega == Approx(0).margin(1e-9));
  CHECK(paper.front().analysis.metrics->psi == Approx(1));
  for (size_t i = 1; i < paper.size(); ++i)
    CHECK(paper[i - 1].score >= paper[i].score);
  auto flops = rank(*all, k, *parseObjective("flops", "h100", 16384));
  for (size_t i = 1; i < flops.size(); ++i)
    CHECK(flops[i - 1].analysis.flops <= flops[i].analysis.flops);
  auto roof = rank(*all, k, *parseObjective("roofline", "h200", 16384));
  Device h200 = *findDevice("h200");
  for (size_t i = 1; i < roof.size(); ++i)
    CHECK(rooflineSeconds(roof[i - 1].analysis, h200, 16384) <=
          rooflineSeconds(roof[i].analysis, h200, 16384));
  // Monarch (64 blocks) at 4096 is within 1/8 of dense MACs and full rank.
  bool monarch = false;
  for (auto &c : paper)
    monarch |= *c.analysis.classSizes == ClassSizes{64, 1, 64, 1, 64, 64, 1};
  CHECK(monarch);
}

TEST_CASE("search input errors", "[search][errors]") {
  CHECK_THAT(enumerate(SearchSpace{1, 16, 12, false, {}, {}}).error(),
             Catch::Contains("d_in = 1 is outside [2, 2^24]"));
  CHECK_THAT(enumerate(SearchSpace{16, 16, 0, false, {}, {}}).error(),
             Catch::Contains("grid = 0 must be in [1, 48]"));
  CHECK_THAT(enumerate(SearchSpace{16, 16, 12, false, {{4, 8}}, {}}).error(),
             Catch::Contains("top_k <= experts"));
  CHECK_THAT(parseObjective("speed", "h100", 1).error(),
             Catch::Contains("unknown objective 'speed'"));
  CHECK_THAT(parseObjective("roofline", "tpu", 1).error(),
             Catch::Contains("unknown device 'tpu'"));
}

TEST_CASE("the space is counted before it is built, with progress",
          "[search]") {
  SearchSpace s{768, 3072, 12, true, {{8, 2}}, {}};
  // Grid points: C(14, 2)² θ splits × 13 ρ values, and C(14, 2)² per MoE
  // option (91 compositions of 12 into three parts).
  CHECK(countGridPoints(s) == 91 * 91 * 13 + 91 * 91);
  std::vector<std::pair<int64_t, int64_t>> reports;
  s.progress = [&](int64_t done, int64_t total) {
    reports.push_back({done, total});
  };
  auto all = enumerate(s);
  REQUIRE(all);
  // Every kept candidate was counted; those dropped after sizing were too.
  auto count = countCandidates(s, kMaxCandidates);
  REQUIRE(count);
  CHECK(int64_t(all->size()) <= *count);
  // Counting stops just past the bound it is given.
  CHECK(*countCandidates(s, 10) == 11);
  // Progress: two passes of 2^20-point steps are fewer than one step here
  // (215k points), so the one report is the last, done == total.
  REQUIRE(!reports.empty());
  for (size_t i = 1; i < reports.size(); ++i)
    CHECK(reports[i].first >= reports[i - 1].first);
  CHECK(reports.back().first == reports.back().second);
  CHECK(reports.back().second == 2 * countGridPoints(s));
}

TEST_CASE("a space past the candidate bound is refused before it is built",
          "[search][errors]") {
  // 48² splits with rounded sizes on 4096 → 4096: well over 500k distinct
  // structures (a search that ran for minutes and took gigabytes).
  SearchSpace s{4096, 4096, 48, true, {}, {}};
  int64_t reports = 0;
  s.progress = [&](int64_t, int64_t) { ++reports; };
  auto all = enumerate(s);
  REQUIRE_FALSE(all);
  CHECK_THAT(all.error(),
             Catch::Contains("holds more than 500000 distinct structures "
                             "(grid 48 with rounded sizes)") &&
                 Catch::Contains("leave out --include-rounded"));
  CHECK(reports >= 1);
}
