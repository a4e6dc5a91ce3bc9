// The brute-force dense matrix of an einsum term, shared by the tests that
// check ranks and compiled outputs against it.
#pragma once
#include "search/Einsum.h"

#include <vector>

namespace einstruct::testing {

// W[o][i] = Σ over all index values of Π weights, with i and o the C-order
// flattenings of x's and y's letters. Deliberately naive.
inline std::vector<std::vector<double>>
denseMatrix(const EinsumTerm &t, const std::vector<std::vector<double>> &w) {
  std::vector<char> letters;
  for (auto [c, n] : t.sizes)
    letters.push_back(c);
  std::map<char, int64_t> val;
  for (char c : letters)
    val[c] = 0;
  auto flat = [&](const std::string &s) {
    int64_t k = 0;
    for (char c : s)
      k = k * t.sizes.at(c) + val[c];
    return k;
  };
  std::vector<std::vector<double>> m(t.outDim(),
                                     std::vector<double>(t.inDim(), 0.0));
  while (true) {
    double p = 1;
    for (size_t k = 0; k < t.weights.size(); ++k)
      p *= w[k][flat(t.weights[k])];
    m[flat(t.output)][flat(t.input)] += p;
    size_t k = 0;
    for (; k < letters.size(); ++k) {
      if (++val[letters[k]] < t.sizes.at(letters[k]))
        break;
      val[letters[k]] = 0;
    }
    if (k == letters.size())
      break;
  }
  return m;
}

} // namespace einstruct::testing
