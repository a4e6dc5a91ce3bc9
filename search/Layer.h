// A structured linear layer: one or more einsum terms summed (DYAD has two),
// the user's d_in/d_out (which rounding may pad), and its full cost analysis.
#pragma once
#include "Sizing.h"

namespace einstruct {

struct Layer {
  std::string label;  // where it came from: a file position or a user label
  std::string name;   // the family, given or recognised ("btt", "generic", ...)
  int64_t dIn = 0, dOut = 0;
  std::vector<EinsumTerm> terms;
  std::optional<Theta> theta; // as the user wrote it, when given as θ
  std::string sizing = "given"; // "round", "exact" or "given"
  int64_t experts = 0, topK = 0; // BTT-MoE: ρ is the expert index
  // Whose conventions the weights follow: "einstruct" (structures.md), or
  // the public code a named structure was built to match ("fly",
  // "einsum-search"); their einsums spell those axis orders.
  std::string layout = "einstruct";
  // A bias (d_out) added to y: the runtime's last weight, counted in params.
  bool bias = false;
};

struct Analysis {
  std::string name;
  int64_t dIn = 0, dOut = 0, paddedIn = 0, paddedOut = 0;
  std::optional<ClassSizes> classSizes; // when the layer fits θ-space
  std::optional<Theta> theta;           // given, or read back from sizes
  int64_t params = 0;
  int64_t flops = 0; // multiply-adds per input vector (active experts only)
  int64_t flopsAllExperts = 0; // BTT-MoE: what the reference computes
  int64_t routerParams = 0, routerFlops = 0;
  std::optional<Taxonomy> metrics;
  std::string metricsFrom; // "theta" or "counts"
  int64_t rankBound = 0;
  std::string validity; // empty when valid
};

// Every weight of every term, in order, with its shape (structures.md
// layouts, size-1 indices dropped).
std::vector<std::vector<int64_t>> weightShapes(const Layer &layer);
// Elements of an array of `shape` (a weight's: products already checked).
int64_t elementCount(const std::vector<int64_t> &shape);

// A layer from θ text / θ and d_in, d_out, sized by `mode`.
Result<Layer> layerFromTheta(const Theta &t, int64_t dIn, int64_t dOut,
                             Sizing mode);
// A layer from one or more einsum terms; d_in/d_out default to the terms'.
Result<Layer> layerFromTerms(std::vector<EinsumTerm> terms,
                             std::optional<int64_t> dIn = std::nullopt,
                             std::optional<int64_t> dOut = std::nullopt);

// The family a θ-space structure belongs to (structures.md §3).
std::string recogniseFamily(const ClassSizes &s);

Result<Analysis> analyze(const Layer &layer);

} // namespace einstruct
