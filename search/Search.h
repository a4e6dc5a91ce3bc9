// Structure search (issue: enumerate, score, pick): every θ on a grid crossed
// with exact (and optionally rounded) integer sizes, deduplicated, filtered by
// constraints, ranked by an objective, with Pareto fronts marked.
#pragma once
#include "Layer.h"

#include <functional>

namespace einstruct {

struct SearchSpace {
  int64_t dIn = 0, dOut = 0;
  int grid = 12;               // θ step 1/grid (12 holds 1/2, 1/3, 1/4, 2/3, 3/4)
  bool includeRounded = false; // also the reference's rounded sizes
  // BTT-MoE options (experts, top_k): BTT structures with ρ = experts.
  std::vector<std::pair<int64_t, int64_t>> moe;
  // Called now and then while the space is walked (counted, then built):
  // steps done of total; last with done == total when enumerate returns.
  std::function<void(int64_t done, int64_t total)> progress;
};

// Distinct structures a search keeps at most (each candidate holds its layer
// and analysis, ~3 KB, so 1.5 GB at most): larger spaces are refused before
// they are built.
constexpr int64_t kMaxCandidates = 500000;

// Grid points the space visits (θ points, and one per MoE option and
// exponent pair).
int64_t countGridPoints(const SearchSpace &space);

// Distinct structures (sizes, experts) in the space, counting stopped as soon
// as they pass `stopPast`; an error for a malformed space.
Result<int64_t> countCandidates(const SearchSpace &space, int64_t stopPast);

struct Candidate {
  Layer layer;
  Analysis analysis;
  Theta gridTheta;            // the grid point that first produced it
  bool paretoParams = false;  // on the (min flops, max params) front
  bool paretoPsi = false;     // on the (min flops, max ψ) front
  double score = 0;           // objective value (see Objective)
  std::string why;            // why it ranks where it does
};

// All distinct structures of the space (same sizes = same structure); an
// error past kMaxCandidates.
Result<std::vector<Candidate>> enumerate(const SearchSpace &space);

struct Constraints {
  std::optional<int64_t> maxFlops, maxParams;
  std::optional<double> maxFlopsRatio; // vs dense d_in·d_out
  std::optional<double> minPsi, maxOmega;
  std::vector<std::string> families;   // empty: all
};

// The paper's preferred class: no parameter sharing (ω = 0), full rank (ψ = 1).
bool isPreferred(const Analysis &a);

// Empty when c satisfies every constraint; else the first one it breaks.
std::string violation(const Candidate &c, const Constraints &k,
                      int64_t dIn, int64_t dOut);

struct Device {
  std::string name;
  double peakTflops;   // dense bf16 tensor-core peak, TFLOP/s
  double hbmTBs;       // memory bandwidth, TB/s
};
const std::vector<Device> &deviceTable();
Result<Device> findDevice(const std::string &name);

struct Objective {
  // "paper" (ω=0, ψ=1 first, then most params per MAC), "flops" (fewest),
  // "params" (most), "params-per-flop", or "roofline" on `device`.
  std::string kind = "paper";
  Device device;
  int64_t tokens = 16384; // for the roofline estimate
};
Result<Objective> parseObjective(const std::string &kind,
                                 const std::string &device, int64_t tokens);

// Roofline time estimate in seconds of one fused bf16 forward over `tokens`.
double rooflineSeconds(const Analysis &a, const Device &d, int64_t tokens);

// Keeps the candidates meeting `k`, marks Pareto fronts among them, scores
// and sorts them best first. Deterministic: ties fall back to sizes.
std::vector<Candidate> rank(std::vector<Candidate> all, const Constraints &k,
                            const Objective &o);

// Marks paretoParams / paretoPsi in place.
void markPareto(std::vector<Candidate> &cs);

} // namespace einstruct
