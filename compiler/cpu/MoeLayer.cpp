#include "MoeLayer.h"

#include "NaiveEinsum.h"

#include <algorithm>
#include <fmt/format.h>

namespace einstruct {

Result<std::unique_ptr<MoeLayer>> MoeLayer::compile(const Layer &layer) {
  if (layer.experts < 1 || layer.terms.size() != 1 ||
      layer.terms[0].weights.size() != 2)
    return Error{"a BTT-MoE layer needs experts >= 1 and one two-weight term"};
  if (layer.topK < 1 || layer.topK > layer.experts)
    return Error{fmt::format("top_k = {} must be in [1, experts = {}]",
                             layer.topK, layer.experts)};
  const EinsumTerm &t = layer.terms[0];
  const char rank = rankLetter(t);
  if (!rank || t.sizes.at(rank) != layer.experts)
    return Error{fmt::format("'{}' has no rank letter of size experts = {}",
                             t.str(), layer.experts)};
  std::unique_ptr<MoeLayer> m(new MoeLayer());
  m->layer_ = layer;
  for (size_t k = 0; k < 2; ++k) {
    const std::string &w = t.weights[k];
    size_t at = w.find(rank);
    m->outer_[k] = t.extent(w.substr(0, at));
    m->inner_[k] = t.extent(w.substr(at + 1));
  }
  Layer one = layer;
  one.experts = one.topK = 0;
  one.name = "btt";
  one.terms[0].sizes[rank] = 1;
  auto jit = JitLayer::compile(one);
  if (!jit)
    return Error{jit.error()};
  m->expert_ = std::move(*jit);
  return m;
}

Routing MoeLayer::route(const float *x, int64_t batch,
                        const float *router) const {
  const int64_t n = layer_.dIn, E = layer_.experts;
  std::vector<float> logits(size_t(batch * E), 0.0f);
  for (int64_t t = 0; t < batch; ++t) {
    float *l = &logits[size_t(t * E)];
    for (int64_t i = 0; i < n; ++i) {
      const float xi = x[t * n + i];
      const float *w = router + i * E;
      for (int64_t e = 0; e < E; ++e)
        l[e] += xi * w[e];
    }
  }
  return routeTokens(logits.data(), batch, E, layer_.topK);
}

MoeLayer::Groups MoeLayer::group(const Routing &r) const {
  Groups g(size_t(r.experts));
  for (int64_t t = 0; t < r.tokens; ++t)
    for (int64_t s = 0; s < r.topK; ++s)
      g[size_t(r.expert[size_t(t * r.topK + s)])].push_back(t * r.topK + s);
  return g;
}

namespace {
// The token rows of src [tokens][width] behind `rows` (token·k + slot), in
// order.
std::vector<float> gatherRows(const float *src,
                              const std::vector<int64_t> &rows, int64_t k,
                              int64_t width) {
  std::vector<float> out(rows.size() * size_t(width));
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy_n(src + rows[i] / k * width, width,
                out.begin() + int64_t(i) * width);
  return out;
}
} // namespace

std::vector<float> MoeLayer::slice(const float *w, size_t k, int64_t e) const {
  const int64_t O = outer_[k], I = inner_[k], E = layer_.experts;
  std::vector<float> part(size_t(O * I));
  for (int64_t o = 0; o < O; ++o)
    std::copy_n(w + (o * E + e) * I, I, part.begin() + o * I);
  return part;
}

void MoeLayer::unslice(const std::vector<float> &part, std::vector<float> &w,
                       size_t k, int64_t e) const {
  const int64_t O = outer_[k], I = inner_[k], E = layer_.experts;
  for (int64_t o = 0; o < O; ++o)
    std::copy_n(part.begin() + o * I, I, w.begin() + (o * E + e) * I);
}

Result<MoeLayer::Forward>
MoeLayer::forward(const float *x, int64_t batch, const float *router,
                  const std::vector<const float *> &weights) const {
  if (weights.size() != 2)
    return Error{fmt::format("{} weight tensors given, BTT-MoE has 2",
                             weights.size())};
  Forward out;
  out.routing = route(x, batch, router);
  const Routing &r = out.routing;
  const int64_t n = layer_.dIn, m = layer_.dOut, K = layer_.topK;
  out.y.assign(size_t(batch * m), 0.0f);
  Groups g = group(r);
  // Expert outputs land per (token, slot), then sum in slot order: the same
  // order whatever the grouping, so results do not depend on it.
  std::vector<float> slots(size_t(batch * K * m));
  for (int64_t e = 0; e < r.experts; ++e) {
    const auto &rows = g[size_t(e)];
    if (rows.empty())
      continue;
    auto xs = gatherRows(x, rows, K, n);
    auto w1 = slice(weights[0], 0, e), w2 = slice(weights[1], 1, e);
    auto ys = expert_->forward(xs.data(), int64_t(rows.size()),
                               {w1.data(), w2.data()});
    if (!ys)
      return Error{ys.error()};
    for (size_t i = 0; i < rows.size(); ++i)
      std::copy_n(ys->begin() + int64_t(i) * m, m,
                  slots.begin() + rows[i] * m);
  }
  for (int64_t t = 0; t < batch; ++t)
    for (int64_t s = 0; s < K; ++s) {
      const float gate = r.gate[size_t(t * K + s)];
      const float *ys = &slots[size_t((t * K + s) * m)];
      float *y = &out.y[size_t(t * m)];
      for (int64_t j = 0; j < m; ++j)
        y[j] += gate * ys[j];
    }
  return out;
}

Result<std::vector<float>>
MoeLayer::forwardAllExperts(const float *x, int64_t batch, const float *router,
                            const std::vector<const float *> &weights) const {
  if (weights.size() != 2)
    return Error{fmt::format("{} weight tensors given, BTT-MoE has 2",
                             weights.size())};
  Routing r = route(x, batch, router);
  const int64_t m = layer_.dOut, K = layer_.topK;
  std::vector<float> y(size_t(batch * m), 0.0f);
  for (int64_t e = 0; e < r.experts; ++e) {
    auto w1 = slice(weights[0], 0, e), w2 = slice(weights[1], 1, e);
    auto ys = expert_->forward(x, batch, {w1.data(), w2.data()});
    if (!ys)
      return Error{ys.error()};
    for (int64_t t = 0; t < batch; ++t) {
      float gate = 0;
      for (int64_t s = 0; s < K; ++s)
        if (r.expert[size_t(t * K + s)] == e)
          gate = r.gate[size_t(t * K + s)];
      for (int64_t j = 0; j < m; ++j)
        y[size_t(t * m + j)] += gate * (*ys)[size_t(t * m + j)];
    }
  }
  return y;
}

std::vector<float>
MoeLayer::naiveReference(const float *x, int64_t rows, const float *router,
                         const std::vector<const float *> &weights) const {
  Routing r = route(x, rows, router);
  const int64_t O = outer_[0], I = inner_[0], E = layer_.experts;
  std::vector<float> y;
  for (int64_t t = 0; t < rows; ++t) {
    std::vector<float> w1(size_t(O * E * I), 0.0f);
    for (int64_t s = 0; s < layer_.topK; ++s) {
      const int64_t e = r.expert[size_t(t * layer_.topK + s)];
      const float gate = r.gate[size_t(t * layer_.topK + s)];
      for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < I; ++i)
          w1[size_t((o * E + e) * I + i)] = gate * weights[0][(o * E + e) * I + i];
    }
    auto yt = naiveForward(layer_, x + t * layer_.dIn, 1, {w1.data(), weights[1]});
    y.insert(y.end(), yt.begin(), yt.end());
  }
  return y;
}

Result<MoeLayer::Gradients>
MoeLayer::backward(const float *x, const float *dy, int64_t batch,
                   const float *router,
                   const std::vector<const float *> &weights,
                   double auxWeight) const {
  if (weights.size() != 2)
    return Error{fmt::format("{} weight tensors given, BTT-MoE has 2",
                             weights.size())};
  Gradients out;
  out.routing = route(x, batch, router);
  const Routing &r = out.routing;
  const int64_t n = layer_.dIn, m = layer_.dOut, K = layer_.topK,
                E = layer_.experts;
  Groups g = group(r);
  out.dx.assign(size_t(batch * n), 0.0f);
  for (size_t k = 0; k < 2; ++k)
    out.dw.emplace_back(size_t(outer_[k] * E * inner_[k]), 0.0f);
  std::vector<float> dgate(size_t(batch * K), 0.0f);
  std::vector<float> dxSlots(size_t(batch * K * n));
  for (int64_t e = 0; e < E; ++e) {
    const auto &rows = g[size_t(e)];
    if (rows.empty())
      continue;
    const int64_t c = int64_t(rows.size());
    auto xs = gatherRows(x, rows, K, n), dys = gatherRows(dy, rows, K, m);
    for (int64_t i = 0; i < c; ++i) // dy of each row times its gate
      for (int64_t j = 0; j < m; ++j)
        dys[size_t(i * m + j)] *= r.gate[size_t(rows[size_t(i)])];
    auto w1 = slice(weights[0], 0, e), w2 = slice(weights[1], 1, e);
    // The gate's gradient needs the expert's ungated output.
    auto ys = expert_->forward(xs.data(), c, {w1.data(), w2.data()});
    if (!ys)
      return Error{ys.error()};
    auto gr = expert_->backward(xs.data(), dys.data(), c,
                                {w1.data(), w2.data()});
    if (!gr)
      return Error{gr.error()};
    for (int64_t i = 0; i < c; ++i) {
      const int64_t slot = rows[size_t(i)], t = slot / K;
      double dot = 0;
      for (int64_t j = 0; j < m; ++j)
        dot += double(dy[t * m + j]) * double((*ys)[size_t(i * m + j)]);
      dgate[size_t(slot)] = float(dot);
      std::copy_n(gr->dx.begin() + i * n, n, dxSlots.begin() + slot * n);
    }
    unslice(gr->dw[0], out.dw[0], 0, e);
    unslice(gr->dw[1], out.dw[1], 1, e);
  }
  auto dl = routeBackward(r, dgate.data(), auxWeight);
  // dx = Σ_slots dx_slot + dlogits·Wgᵀ; dWg = xᵀ·dlogits.
  out.dRouter.assign(size_t(n * E), 0.0f);
  for (int64_t t = 0; t < batch; ++t) {
    float *dxt = &out.dx[size_t(t * n)];
    for (int64_t s = 0; s < K; ++s) {
      const float *part = &dxSlots[size_t((t * K + s) * n)];
      for (int64_t i = 0; i < n; ++i)
        dxt[i] += part[i];
    }
    const float *d = &dl[size_t(t * E)];
    for (int64_t i = 0; i < n; ++i) {
      float acc = 0;
      const float *w = router + i * E;
      float *dw = &out.dRouter[size_t(i * E)];
      for (int64_t e = 0; e < E; ++e) {
        acc += d[e] * w[e];
        dw[e] += x[t * n + i] * d[e];
      }
      dxt[i] += acc;
    }
  }
  return out;
}

} // namespace einstruct
