// BTT-MoE routing (structures.md §3), the reference semantics every backend
// matches: logits = x·Wg, top-k experts per token, gates = softmax over the k
// selected logits + 1e-6, and the auxiliary load-balancing loss
//   aux = E·Σ_e p̂_e·f̂_e + 0.1·mean_t(logsumexp_t²)
// with p̂ the token-averaged router softmax and f̂ the selection counts over
// T·k. Top-k ties go to the lower expert index; the k selected experts of a
// token are listed by descending logit.
#pragma once
#include <cstdint>
#include <vector>

namespace einstruct {

constexpr double kGateEpsilon = 1e-6; // added to every selected gate

struct Routing {
  int64_t tokens = 0, experts = 0, topK = 0;
  std::vector<int32_t> expert; // [T][k]
  std::vector<float> gate;     // [T][k]
  std::vector<double> probs;   // [T][E] full router softmax
  std::vector<double> lse;     // [T] logsumexp of each token's logits
  std::vector<int64_t> counts; // [E] tokens routed to each expert
  double auxLoss = 0;
  double entropy = 0; // mean over tokens of -Σ_e p·ln p (nats)
};

// logits: [tokens][experts], row-major; 1 <= topK <= experts.
Routing routeTokens(const float *logits, int64_t tokens, int64_t experts,
                    int64_t topK);

// d(loss)/d(logits) [T][E] for loss = Σ dgate·gate + auxWeight·aux, given
// dgate [T][k] in the order of `r.expert`. The +1e-6 has no gradient;
// selection counts (f̂) are constants, as in the reference.
std::vector<float> routeBackward(const Routing &r, const float *dgate,
                                 double auxWeight);

} // namespace einstruct
