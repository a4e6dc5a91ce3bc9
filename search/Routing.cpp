#include "Routing.h"

#include <cmath>

namespace einstruct {

Routing routeTokens(const float *logits, int64_t tokens, int64_t experts,
                    int64_t topK) {
  Routing r;
  r.tokens = tokens, r.experts = experts, r.topK = topK;
  r.expert.resize(size_t(tokens * topK));
  r.gate.resize(size_t(tokens * topK));
  r.probs.resize(size_t(tokens * experts));
  r.lse.resize(size_t(tokens));
  r.counts.assign(size_t(experts), 0);
  std::vector<double> pSum(size_t(experts), 0.0);
  double lseSq = 0, entropy = 0;
  std::vector<char> taken(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    const float *l = logits + t * experts;
    double mx = l[0];
    for (int64_t e = 1; e < experts; ++e)
      mx = std::max(mx, double(l[e]));
    double sum = 0;
    for (int64_t e = 0; e < experts; ++e)
      sum += std::exp(double(l[e]) - mx);
    const double lse = mx + std::log(sum);
    r.lse[size_t(t)] = lse;
    lseSq += lse * lse;
    double *p = &r.probs[size_t(t * experts)];
    for (int64_t e = 0; e < experts; ++e) {
      p[e] = std::exp(double(l[e]) - lse);
      pSum[size_t(e)] += p[e];
      if (p[e] > 0)
        entropy -= p[e] * std::log(p[e]);
    }
    // Top-k by repeated arg-max; a strict '>' keeps the lower index on ties.
    std::fill(taken.begin(), taken.end(), 0);
    int32_t *sel = &r.expert[size_t(t * topK)];
    for (int64_t s = 0; s < topK; ++s) {
      int64_t best = -1;
      for (int64_t e = 0; e < experts; ++e)
        if (!taken[size_t(e)] && (best < 0 || l[e] > l[best]))
          best = e;
      taken[size_t(best)] = 1;
      sel[s] = int32_t(best);
      ++r.counts[size_t(best)];
    }
    // Softmax over the selected logits: p restricted and renormalised.
    double selSum = 0;
    for (int64_t s = 0; s < topK; ++s)
      selSum += p[sel[s]];
    for (int64_t s = 0; s < topK; ++s)
      r.gate[size_t(t * topK + s)] = float(p[sel[s]] / selSum + kGateEpsilon);
  }
  if (tokens > 0) {
    const double T = double(tokens);
    double balance = 0;
    for (int64_t e = 0; e < experts; ++e)
      balance += (pSum[size_t(e)] / T) *
                 (double(r.counts[size_t(e)]) / (T * double(topK)));
    r.auxLoss = double(experts) * balance + 0.1 * lseSq / T;
    r.entropy = entropy / T;
  }
  return r;
}

std::vector<float> routeBackward(const Routing &r, const float *dgate,
                                 double auxWeight) {
  const int64_t T = r.tokens, E = r.experts, K = r.topK;
  std::vector<float> dl(size_t(T * E), 0.0f);
  std::vector<double> f(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e)
    f[size_t(e)] = T ? double(r.counts[size_t(e)]) / double(T * K) : 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const double *p = &r.probs[size_t(t * E)];
    const int32_t *sel = &r.expert[size_t(t * K)];
    const float *dg = dgate + t * K;
    float *d = &dl[size_t(t * E)];
    // Gates: s = softmax over the selected; ds_i = s_i (dg_i - Σ_j s_j dg_j).
    double selSum = 0, sdg = 0;
    for (int64_t s = 0; s < K; ++s)
      selSum += p[sel[s]];
    for (int64_t s = 0; s < K; ++s)
      sdg += p[sel[s]] / selSum * dg[s];
    std::vector<double> acc(size_t(E), 0.0);
    for (int64_t s = 0; s < K; ++s)
      acc[size_t(sel[s])] += p[sel[s]] / selSum * (dg[s] - sdg);
    if (auxWeight != 0) {
      // ∂aux/∂l_e = (E/T)·p_e·(f̂_e − Σ f̂·p) + (0.2/T)·lse·p_e
      double fp = 0;
      for (int64_t e = 0; e < E; ++e)
        fp += f[size_t(e)] * p[e];
      for (int64_t e = 0; e < E; ++e)
        acc[size_t(e)] += auxWeight *
                          (double(E) / double(T) * p[e] * (f[size_t(e)] - fp) +
                           0.2 / double(T) * r.lse[size_t(t)] * p[e]);
    }
    for (int64_t e = 0; e < E; ++e)
      d[e] = float(acc[size_t(e)]);
  }
  return dl;
}

} // namespace einstruct
