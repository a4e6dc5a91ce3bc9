// One einsum term of a linear layer: the input x, one or more weight tensors,
// and the output y, each named by its index letters (C order), plus a size for
// every letter. Parsing, exact costing and the rank bound live here.
#pragma once
#include "Result.h"
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace einstruct {

constexpr int kMaxWeights = 8;

struct EinsumTerm {
  std::string input;                // x
  std::vector<std::string> weights; // W1, W2, ...
  std::string output;               // y
  std::map<char, int64_t> sizes;

  std::string str() const; // "gba,fdrga,fergb->fed"
  std::string sizesStr() const; // "a=64,f=64,..."
  // Product of the sizes of `letters` (already checked not to overflow).
  int64_t extent(const std::string &letters) const;
  // The dimensions of an operand named by `letters`, in order.
  std::vector<int64_t> shape(const std::string &letters) const;
  int64_t inDim() const { return extent(input); }
  int64_t outDim() const { return extent(output); }
};

// Parses "x,W1,...->y" plus sizes given as "g=64,a=64". Letters of size 1 may be
// left out of the sizes. Errors give the column (1-based) of the problem.
Result<EinsumTerm> parseEinsum(std::string_view spec, std::string_view sizes);
// Checks the letters only (no sizes): operands, output, repeated and unused
// indices. Also used by the dialect's pairwise contraction op.
Result<EinsumTerm> parseEinsumLetters(std::string_view spec);
Result<EinsumTerm> makeEinsum(std::string_view spec,
                              const std::map<char, int64_t> &sizes);
Result<std::map<char, int64_t>> parseSizes(std::string_view text);

// The term whose product is the gradient of x: dy in x's place, the
// weights in reverse order (the one next to y first), x's letters out —
// the einsum read backwards. Autodiff's dx and the CUDA kernels' backward
// role both come from it.
EinsumTerm transposedTerm(const EinsumTerm &t);

// The letter held by every weight and by neither x nor y — BTT's rank ρ,
// which BTT-MoE uses as its expert index — or 0 when there is none.
char rankLetter(const EinsumTerm &t);

struct Cost {
  int64_t params = 0; // weight entries
  int64_t flops = 0;  // multiply-adds per input vector
  std::vector<int> order; // weights in contraction order, from x outwards
};

// Exact cost of the cheapest chain x·W_{o1}·W_{o2}... (exhaustive over orders).
Result<Cost> termCost(const EinsumTerm &t);

// Upper bound on the rank of the d_in×d_out matrix the term represents: letters
// shared by x and y pass through as blocks; the rest is bounded by the minimum
// cut between x and y over all ways to split the weights.
int64_t rankBound(const EinsumTerm &t);

// For a term with exactly two weights whose letters each fall in one θ-class
// (structures.md §1), the class sizes a,b,g,d,e,f,r (products when a class
// has several letters); nullopt when it does not fit the 2-factor space.
std::optional<std::array<int64_t, 7>> classify(const EinsumTerm &t);

} // namespace einstruct
