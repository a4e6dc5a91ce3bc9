#include "Einsum.h"
#include "Checked.h"

#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <numeric>
#include <set>

namespace einstruct {

static std::string joinOperands(const EinsumTerm &t) {
  std::string s = t.input;
  for (const auto &w : t.weights)
    s += "," + w;
  return s + "->" + t.output;
}

std::string EinsumTerm::str() const { return joinOperands(*this); }

EinsumTerm transposedTerm(const EinsumTerm &t) {
  EinsumTerm out = t;
  out.input = t.output;
  out.output = t.input;
  out.weights.assign(t.weights.rbegin(), t.weights.rend());
  return out;
}

std::string EinsumTerm::sizesStr() const {
  std::string s;
  for (auto [c, n] : sizes)
    s += fmt::format("{}{}={}", s.empty() ? "" : ",", c, n);
  return s;
}

int64_t EinsumTerm::extent(const std::string &letters) const {
  int64_t p = 1;
  for (char c : letters)
    p *= sizes.at(c);
  return p;
}

std::vector<int64_t> EinsumTerm::shape(const std::string &letters) const {
  std::vector<int64_t> s;
  for (char c : letters)
    s.push_back(sizes.at(c));
  return s;
}

Result<std::map<char, int64_t>> parseSizes(std::string_view text) {
  std::map<char, int64_t> sizes;
  size_t i = 0;
  auto skip = [&] {
    while (i < text.size() && std::isspace((unsigned char)text[i]))
      ++i;
  };
  while (true) {
    skip();
    if (i >= text.size())
      break;
    size_t col = i + 1;
    char c = text[i];
    if (!std::isalpha((unsigned char)c))
      return Error{fmt::format("sizes: expected an index letter at column {}, "
                               "found '{}'",
                               col, c)};
    ++i;
    skip();
    if (i >= text.size() || (text[i] != '=' && text[i] != ':'))
      return Error{fmt::format("sizes: expected '=' after '{}' at column {}", c,
                               col)};
    ++i;
    skip();
    size_t numStart = i;
    int64_t v = 0;
    if (i < text.size() && text[i] == '-')
      return Error{fmt::format("sizes: size of '{}' at column {} is negative",
                               c, numStart + 1)};
    while (i < text.size() && std::isdigit((unsigned char)text[i])) {
      if (!appendDigit(v, text[i], kMaxDim))
        return Error{fmt::format("sizes: size of '{}' at column {} exceeds the "
                                 "limit 2^40",
                                 c, numStart + 1)};
      ++i;
    }
    if (i == numStart)
      return Error{fmt::format("sizes: expected a number for '{}' at column {}",
                               c, numStart + 1)};
    if (v == 0)
      return Error{fmt::format("sizes: size of '{}' at column {} is 0; sizes "
                               "must be >= 1",
                               c, numStart + 1)};
    if (sizes.count(c))
      return Error{fmt::format("sizes: '{}' given twice (column {})", c, col)};
    sizes[c] = v;
    skip();
    if (i < text.size()) {
      if (text[i] != ',')
        return Error{fmt::format("sizes: expected ',' at column {}, found '{}'",
                                 i + 1, text[i])};
      ++i;
    }
  }
  return sizes;
}

Result<EinsumTerm> parseEinsumLetters(std::string_view spec) {
  EinsumTerm t;
  std::vector<std::string> inputs;
  std::vector<size_t> columns; // 1-based column where each operand starts
  size_t arrow = spec.find("->");
  if (arrow == std::string_view::npos)
    return Error{"einsum: missing '->' (write x,W1,W2->y)"};
  if (spec.find("->", arrow + 2) != std::string_view::npos)
    return Error{fmt::format("einsum: second '->' at column {}",
                             spec.find("->", arrow + 2) + 1)};
  std::string cur;
  columns.push_back(1);
  for (size_t i = 0; i < arrow; ++i) {
    char c = spec[i];
    if (c == ',') {
      inputs.push_back(cur);
      cur.clear();
      columns.push_back(i + 2);
    } else if (std::isalpha((unsigned char)c)) {
      if (cur.find(c) != std::string::npos)
        return Error{fmt::format("einsum: index '{}' repeated within operand {} "
                                 "at column {} (diagonals are not supported)",
                                 c, inputs.size() + 1, i + 1)};
      cur += c;
    } else if (!std::isspace((unsigned char)c)) {
      return Error{fmt::format("einsum: unexpected character '{}' at column {}",
                               c, i + 1)};
    }
  }
  inputs.push_back(cur);
  for (size_t i = arrow + 2; i < spec.size(); ++i) {
    char c = spec[i];
    if (std::isspace((unsigned char)c))
      continue;
    if (!std::isalpha((unsigned char)c))
      return Error{fmt::format("einsum: unexpected character '{}' at column {} "
                               "in the output",
                               c, i + 1)};
    if (t.output.find(c) != std::string::npos)
      return Error{fmt::format("einsum: output index '{}' repeated at column {}",
                               c, i + 1)};
    t.output += c;
  }
  if (inputs.size() < 2)
    return Error{"einsum: needs the input and at least one weight operand "
                 "(x,W->y)"};
  if (inputs.size() - 1 > size_t(kMaxWeights))
    return Error{fmt::format("einsum: {} weight operands; at most {} supported",
                             inputs.size() - 1, kMaxWeights)};
  t.input = inputs[0];
  t.weights.assign(inputs.begin() + 1, inputs.end());

  // Every letter must be used by at least two operands (x, weights, y).
  std::map<char, int> uses;
  for (auto &op : inputs)
    for (char c : op)
      ++uses[c];
  for (size_t k = 0; k < t.output.size(); ++k) {
    char c = t.output[k];
    if (!uses.count(c))
      return Error{fmt::format("einsum: output index '{}' (column {}) appears "
                               "in no input operand",
                               c, arrow + 3 + k)};
    ++uses[c];
  }
  for (size_t op = 0; op < inputs.size(); ++op)
    for (size_t k = 0; k < inputs[op].size(); ++k)
      if (uses[inputs[op][k]] < 2)
        return Error{fmt::format(
            "einsum: index '{}' (column {}) appears only in operand {}; it "
            "would be summed away",
            inputs[op][k], columns[op] + k, op + 1)};
  for (auto [c, n] : uses)
    t.sizes[c] = 0; // letters known, sizes not yet
  return t;
}

Result<EinsumTerm> makeEinsum(std::string_view spec,
                              const std::map<char, int64_t> &givenSizes) {
  auto parsed = parseEinsumLetters(spec);
  if (!parsed)
    return parsed;
  EinsumTerm t = *parsed;
  std::map<char, int> uses;
  for (auto [c, n] : t.sizes)
    uses[c] = 1;

  for (auto [c, n] : givenSizes) {
    if (!uses.count(c))
      return Error{fmt::format("sizes: '{}' is not an index of the einsum", c)};
    if (n < 1 || n > kMaxDim)
      return Error{fmt::format("sizes: size of '{}' is {}; must be in [1, 2^40]",
                               c, n)};
  }
  for (auto [c, n] : uses) {
    if (!givenSizes.count(c))
      return Error{fmt::format("sizes: no size given for index '{}' (column {}); "
                               "write {}=1 for a size-1 index",
                               c, spec.find(c) + 1, c)};
    t.sizes[c] = givenSizes.at(c);
  }

  // Every operand's element count must fit in 64 bits.
  auto fits = [&](const std::string &letters, const std::string &what)
      -> std::optional<Error> {
    int64_t p = 1;
    for (char c : letters) {
      auto m = checkedMul(p, t.sizes[c]);
      if (!m)
        return Error{fmt::format("einsum: {} '{}' has more than 2^63 entries",
                                 what, letters)};
      p = *m;
    }
    return std::nullopt;
  };
  if (auto e = fits(t.input, "input"))
    return *e;
  if (auto e = fits(t.output, "output"))
    return *e;
  for (auto &w : t.weights)
    if (auto e = fits(w, "weight"))
      return *e;
  return t;
}

Result<EinsumTerm> parseEinsum(std::string_view spec, std::string_view sizes) {
  auto s = parseSizes(sizes);
  if (!s)
    return Error{s.error()};
  return makeEinsum(spec, *s);
}

// Product of sizes of a letter set, checked.
static std::optional<int64_t> product(const EinsumTerm &t,
                                      const std::set<char> &letters) {
  int64_t p = 1;
  for (char c : letters) {
    auto m = checkedMul(p, t.sizes.at(c));
    if (!m)
      return std::nullopt;
    p = *m;
  }
  return p;
}

Result<Cost> termCost(const EinsumTerm &t) {
  Cost best;
  for (auto &w : t.weights) {
    auto n = product(t, std::set<char>(w.begin(), w.end()));
    auto s = n ? checkedAdd(best.params, *n) : std::nullopt;
    if (!s)
      return Error{"parameter count overflows 64 bits"};
    best.params = *s;
  }
  // Dynamic programming over the set S of weights already absorbed: the
  // intermediate after S holds the letters of x and S still needed by the
  // rest or the output, whatever the order within S. rest[S] is the cheapest
  // finish from S (nullopt: every finish overflows); O(2^n·n) instead of n!.
  const int n = int(t.weights.size());
  const unsigned full = (1u << n) - 1;
  auto letters = [&](unsigned set) {
    std::set<char> all(t.input.begin(), t.input.end());
    for (int k = 0; k < n; ++k)
      if (set >> k & 1)
        all.insert(t.weights[size_t(k)].begin(), t.weights[size_t(k)].end());
    std::set<char> keep;
    for (char c : all) {
      bool needed = t.output.find(c) != std::string::npos;
      for (int k = 0; k < n && !needed; ++k)
        needed = !(set >> k & 1) &&
                 t.weights[size_t(k)].find(c) != std::string::npos;
      if (needed)
        keep.insert(c);
    }
    return keep;
  };
  // The multiply-adds of absorbing weight k after S.
  auto step = [&](unsigned set, int k) {
    std::set<char> all = letters(set);
    all.insert(t.weights[size_t(k)].begin(), t.weights[size_t(k)].end());
    return product(t, all);
  };
  std::vector<std::optional<int64_t>> rest(full + 1);
  rest[full] = 0;
  for (unsigned set = full; set-- > 0;)
    for (int k = 0; k < n; ++k) {
      if (set >> k & 1 || !rest[set | 1u << k])
        continue;
      auto c = step(set, k);
      auto total = c ? checkedAdd(*c, *rest[set | 1u << k]) : std::nullopt;
      if (total && (!rest[set] || *total < *rest[set]))
        rest[set] = total;
    }
  if (!rest[0])
    return Error{"FLOP count overflows 64 bits"};
  best.flops = *rest[0];
  // The lexicographically first optimal order, as an enumeration of all
  // orders would report it.
  for (unsigned set = 0; set != full;) {
    int next = -1;
    for (int k = 0; k < n && next < 0; ++k) {
      if (set >> k & 1 || !rest[set | 1u << k])
        continue;
      auto c = step(set, k);
      auto total = c ? checkedAdd(*c, *rest[set | 1u << k]) : std::nullopt;
      if (total && *total == *rest[set])
        next = k;
    }
    if (next < 0) // unreachable: rest[set] was reached through some k
      return Error{"internal: no optimal contraction order"};
    best.order.push_back(next);
    set |= 1u << next;
  }
  return best;
}

int64_t rankBound(const EinsumTerm &t) {
  // Operand ids: 0 = x, 1..W = weights, W+1 = y.
  int W = int(t.weights.size());
  std::map<char, std::vector<int>> where;
  for (char c : t.input)
    where[c].push_back(0);
  for (int k = 0; k < W; ++k)
    for (char c : t.weights[k])
      where[c].push_back(k + 1);
  for (char c : t.output)
    where[c].push_back(W + 1);
  long double blocks = 1;
  for (auto &[c, ops] : where)
    if (ops.front() == 0 && ops.back() == W + 1)
      blocks *= t.sizes.at(c);
  long double best = -1;
  for (unsigned mask = 0; mask < (1u << W); ++mask) {
    // Bit k set: weight k sits on x's side of the cut.
    long double cut = 1;
    for (auto &[c, ops] : where) {
      if (ops.front() == 0 && ops.back() == W + 1)
        continue;
      bool xSide = false, ySide = false;
      for (int op : ops) {
        bool side = op == 0 || (op <= W && (mask >> (op - 1) & 1));
        (side ? xSide : ySide) = true;
      }
      if (xSide && ySide)
        cut *= t.sizes.at(c);
    }
    if (best < 0 || cut < best)
      best = cut;
  }
  long double r = blocks * best;
  long double cap = std::min<long double>(t.inDim(), t.outDim());
  return int64_t(std::min(r, cap));
}

std::optional<std::array<int64_t, 7>> classify(const EinsumTerm &t) {
  if (t.weights.size() != 2)
    return std::nullopt;
  std::array<int64_t, 7> s;
  s.fill(1);
  std::set<char> letters;
  for (auto &[c, n] : t.sizes)
    letters.insert(c);
  auto has = [](const std::string &op, char c) {
    return op.find(c) != std::string::npos;
  };
  for (char c : letters) {
    bool x = has(t.input, c), a = has(t.weights[0], c),
         b = has(t.weights[1], c), y = has(t.output, c);
    int cls;
    if (x && a && !b && !y)
      cls = 0; // α
    else if (x && !a && b && !y)
      cls = 1; // β
    else if (x && a && b && !y)
      cls = 2; // γ
    else if (!x && a && !b && y)
      cls = 3; // δ
    else if (!x && !a && b && y)
      cls = 4; // ε
    else if (!x && a && b && y)
      cls = 5; // φ
    else if (!x && a && b && !y)
      cls = 6; // ρ
    else
      return std::nullopt;
    s[cls] *= t.sizes.at(c);
  }
  return s;
}

char rankLetter(const EinsumTerm &t) {
  if (t.weights.empty())
    return 0;
  for (char c : t.weights[0]) {
    bool everyWeight = true;
    for (const auto &w : t.weights)
      everyWeight = everyWeight && w.find(c) != std::string::npos;
    if (everyWeight && t.input.find(c) == std::string::npos &&
        t.output.find(c) == std::string::npos)
      return c;
  }
  return 0;
}

} // namespace einstruct
