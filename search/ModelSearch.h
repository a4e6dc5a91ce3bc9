// Model-level search: one structure per named linear layer so that the whole
// model fits a total MAC budget with the most parameters (capacity).
#pragma once
#include "Search.h"

namespace einstruct {

struct ModelLayer {
  std::string name;
  int64_t dIn = 0, dOut = 0, count = 1; // count: repeats (e.g. per block)
};

struct ModelChoice {
  ModelLayer layer;
  Candidate pick;
};

// A budget given as a fraction of the dense layers' MACs (Σ count·d_in·d_out),
// as every caller (model files, convert(), a block's proj=search) computes it.
int64_t budgetFromRatio(const std::vector<ModelLayer> &layers, double ratio);

struct ModelResult {
  std::vector<ModelChoice> choices;
  int64_t totalFlops = 0, totalParams = 0;   // with counts
  int64_t denseFlops = 0, denseParams = 0;   // the dense model
  int64_t budgetFlops = 0;
};

// Maximises Σ count·params subject to Σ count·flops ≤ budget over the
// candidates each layer allows (`k` applies per layer; the paper's ω=0, ψ=1
// class is used where it has any candidate). Exact when the budget divided by
// the gcd of all costs fits 200,000 units (the usual case: sizes share
// factors); otherwise costs are rounded up to budget/`buckets` units, so the
// budget is never exceeded and the result is within that rounding of optimal.
Result<ModelResult> searchModel(const std::vector<ModelLayer> &layers,
                                int64_t budgetFlops, const SearchSpace &base,
                                const Constraints &k, int buckets = 4000);

} // namespace einstruct
