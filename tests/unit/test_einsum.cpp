// Einsum strings: parsing errors, θ-class recognition, exact costs.
#include "search/Layer.h"

#include <catch2/catch.hpp>
#include <numeric>
#include <random>
#include <set>

using namespace einstruct;

TEST_CASE("the canonical einsum classifies back into θ-classes", "[einsum]") {
  auto t = parseEinsum("gba,fdrga,fergb->fed",
                       "g=8,b=2,a=4,f=3,d=5,e=7,r=6");
  REQUIRE(t);
  auto s = classify(*t);
  REQUIRE(s);
  CHECK(*s == ClassSizes{4, 2, 8, 5, 7, 3, 6});
  auto layer = layerFromTerms({*t});
  REQUIRE(layer);
  CHECK(layer->dIn == 64);
  CHECK(layer->dOut == 105);
  auto a = analyze(*layer);
  REQUIRE(a);
  // structures.md: params = f·d·r·g·a + f·e·r·g·b, flops likewise.
  CHECK(a->params == 3 * 5 * 6 * 8 * 4 + 3 * 7 * 6 * 8 * 2);
  CHECK(a->flops == 3 * 5 * 6 * 8 * 2 * 4 + 3 * 7 * 5 * 6 * 8 * 2);
  CHECK(a->metricsFrom == "theta");
}

TEST_CASE("letters that leave the 2-factor space are costed by contraction",
          "[einsum]") {
  // Block-diagonal: k is shared by x and y, which no θ-class allows.
  auto t = parseEinsum("ki,koi->ko", "k=4,i=8,o=16");
  REQUIRE(t);
  CHECK_FALSE(classify(*t));
  auto a = analyze(*layerFromTerms({*t}));
  REQUIRE(a);
  CHECK(a->params == 4 * 16 * 8);
  CHECK(a->flops == 4 * 16 * 8);
  CHECK(a->rankBound == 4 * 8);
  CHECK(a->name == "block-diagonal");
  CHECK(a->metricsFrom == "counts");
  // A three-factor chain: the best order is found exhaustively.
  auto chain = parseEinsum("a,ba,cb,dc->d", "a=64,b=2,c=64,d=64");
  REQUIRE(chain);
  auto c = termCost(*chain);
  REQUIRE(c);
  CHECK(c->flops == 64 * 2 + 2 * 64 + 64 * 64);
  CHECK(c->order == std::vector<int>{0, 1, 2});
  CHECK(rankBound(*chain) == 2);
}

TEST_CASE("einsum errors name the problem and column", "[einsum][errors]") {
  struct Bad {
    const char *spec, *sizes, *expect;
  } bad[] = {
      {"ga,fga,feg", "g=2,a=2,f=2,e=2", "missing '->'"},
      {"ga,fga->fe->f", "g=2,a=2,f=2,e=2", "second '->' at column 11"},
      {"g1,fga,feg->fe", "g=2,a=2,f=2,e=2", "unexpected character '1' at column 2"},
      {"ga,fga,feg->ff", "g=2,a=2,f=2,e=2", "output index 'f' repeated at column 14"},
      {"ga,fga,feg->fz", "g=2,a=2,f=2,e=2", "output index 'z' (column 14) appears in no input"},
      {"gg,fga,feg->fe", "g=2,a=2,f=2,e=2", "index 'g' repeated within operand 1 at column 2"},
      {"ga->g", "g=2,a=2", "at least one weight"},
      {"gaq,fga,feg->fe", "g=2,a=2,f=2,e=2,q=2", "index 'q' (column 3) appears only in operand 1"},
      {"ga,fga,feg->fe", "g=2,a=2,f=2", "no size given for index 'e'"},
      {"ga,fga,feg->fe", "g=2,a=2,f=2,e=0", "size of 'e' at column 15 is 0"},
      {"ga,fga,feg->fe", "g=2,a=2,f=2,e=-1", "is negative"},
      {"ga,fga,feg->fe", "g=2,a=2,f=2,e=2,z=3", "'z' is not an index"},
      {"ga,fga,feg->fe", "g=2,a=2,f=2,e=99999999999999999999", "exceeds the limit"},
      {"ga,fga,feg->fe", "g=2,a=2,f=2,f=2,e=2", "'f' given twice"},
      {"ga,fga,feg->fe", "g=2 a=2", "expected ','"},
      {"abc,abcdef->def", "a=1048576,b=1048576,c=1048576,d=1048576,e=1048576,f=1048576",
       "more than 2^63 entries"},
  };
  for (auto &b : bad) {
    INFO(b.spec << "  " << b.sizes);
    auto t = parseEinsum(b.spec, b.sizes);
    REQUIRE_FALSE(t);
    CHECK_THAT(t.error(), Catch::Contains(b.expect));
  }
}

TEST_CASE("FLOP counts that overflow 64 bits are errors, not wraparound",
          "[einsum][errors]") {
  // Each operand fits, but contracting x with W touches 2^80 index tuples.
  auto t = parseEinsum("ab,cd->cd", "a=1048576,b=1048576,c=1048576,d=1048576");
  // 'a' and 'b' appear only in x: rejected before costing.
  REQUIRE_FALSE(t);
  auto big = parseEinsum("ab,bcd,cde->ae",
                         "a=1048576,b=1048576,c=1048576,d=1048576,e=1048576");
  REQUIRE(big);
  auto c = termCost(*big);
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error(), Catch::Contains("overflows 64 bits"));
}

namespace {

// Every order of absorbing the weights into x, costed step by step: the
// definition termCost must agree with (it uses dynamic programming).
std::pair<int64_t, std::vector<int>> bruteForceCost(const EinsumTerm &t) {
  std::vector<int> order(t.weights.size()), bestOrder;
  std::iota(order.begin(), order.end(), 0);
  int64_t best = -1;
  do {
    std::set<char> cur(t.input.begin(), t.input.end());
    int64_t flops = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      std::set<char> all = cur;
      all.insert(t.weights[order[k]].begin(), t.weights[order[k]].end());
      int64_t p = 1;
      for (char c : all)
        p *= t.sizes.at(c);
      flops += p;
      cur.clear();
      for (char c : all) {
        bool needed = t.output.find(c) != std::string::npos;
        for (size_t j = k + 1; j < order.size(); ++j)
          needed |= t.weights[order[j]].find(c) != std::string::npos;
        if (needed)
          cur.insert(c);
      }
    }
    if (best < 0 || flops < best)
      best = flops, bestOrder = order;
  } while (std::next_permutation(order.begin(), order.end()));
  return {best, bestOrder};
}

} // namespace

TEST_CASE("contraction order: dynamic programming equals trying every order",
          "[einsum]") {
  std::mt19937 rng(5);
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    // Random tensor networks: 2..6 weights over letters a..h, x and y drawn
    // from the letters used.
    std::uniform_int_distribution<int> nw(2, 6), nl(1, 3), letter(0, 7),
        size(1, 5);
    std::string spec, x, y;
    std::set<char> used;
    std::vector<std::string> ws(size_t(nw(rng)));
    for (auto &w : ws) {
      for (int k = nl(rng); k > 0; --k) {
        char c = char('a' + letter(rng));
        if (w.find(c) == std::string::npos)
          w += c;
      }
      used.insert(w.begin(), w.end());
    }
    for (char c : used)
      (rng() % 2 ? x : y) += c;
    if (x.empty() || y.empty())
      continue;
    spec = x;
    for (auto &w : ws)
      spec += "," + w;
    spec += "->" + y;
    std::string sizes;
    for (char c : used)
      sizes += std::string(sizes.empty() ? "" : ",") + c + "=" +
               std::to_string(size(rng));
    auto t = parseEinsum(spec, sizes);
    if (!t)
      continue; // e.g. a letter in one operand only
    auto cost = termCost(*t);
    REQUIRE(cost);
    auto [flops, order] = bruteForceCost(*t);
    INFO(spec << " " << sizes);
    CHECK(cost->flops == flops);
    CHECK(cost->order == order);
    ++checked;
  }
  CHECK(checked > 50);
}
