#include "MoeLayer.h"

#include "NaiveEinsum.h"
#include "WorkerPool.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <algorithm>
#include <optional>
#include <fmt/format.h>

namespace einstruct {

namespace {
// Why a call with `weights` weight tensors and `batch` rows cannot run.
std::optional<std::string> badCall(size_t weights, int64_t batch) {
  if (weights != 2)
    return fmt::format("{} weight tensors given, BTT-MoE has 2", weights);
  if (batch < 1)
    return fmt::format("batch = {} must be positive", batch);
  return std::nullopt;
}

// to[i] += from[i] for i < n.
void addInto(float *to, const float *from, size_t n) {
  for (size_t i = 0; i < n; ++i)
    to[i] += from[i];
}
} // namespace

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
  // The router GEMM through the same pipeline: logits[n, E] = x[n, :]·Wg.
  auto term = parseEinsum("i,io->o", fmt::format("i={},o={}", layer.dIn,
                                                 layer.experts));
  if (!term)
    return Error{"router: " + term.error()};
  auto routerLayer = layerFromTerms({*term});
  if (!routerLayer)
    return Error{"router: " + routerLayer.error()};
  auto router = JitLayer::compile(*routerLayer);
  if (!router)
    return Error{"router: " + router.error()};
  m->router_ = std::move(*router);
  auto lowered = JitModule::compile(
      [&](mlir::ModuleOp module) { emitMoeLayer(module, layer, "moe", true); },
      [](mlir::OpPassManager &) {}, {"moe"}, hostVectorUnits());
  if (!lowered)
    return Error{"lowered forward: " + lowered.error()};
  m->lowered_ = std::move(*lowered);
  // The backward: autodiff of a private (y, aux) function, which is then
  // dropped (only its gradient is called).
  auto backward = JitModule::compile(
      [&](mlir::ModuleOp module) {
        emitMoeLayer(module, layer, "moe_train");
        module.lookupSymbol<mlir::func::FuncOp>("moe_train").setPrivate();
      },
      [](mlir::OpPassManager &pm) {
        pm.addPass(createAutodiff());
        pm.addPass(mlir::createSymbolDCEPass());
      },
      {"moe_train_backward"}, hostVectorUnits());
  if (!backward)
    return Error{"lowered backward: " + backward.error()};
  m->loweredBackward_ = std::move(*backward);
  m->threads_ = m->expert_->threads();
  if (auto a = analyze(layer)) // active multiply-adds per token
    m->autoMinRows_ = workers::minRowsPerChunk(a->flops);
  m->minRowsPerThread_ = m->autoMinRows_;
  return m;
}

Result<Routing> MoeLayer::route(const float *x, int64_t batch,
                                const float *router) const {
  const int64_t E = layer_.experts;
  PooledFloats logits(size_t(batch * E));
  auto ok = router_->forwardInto(x, batch, {router}, logits.data());
  if (!ok)
    return Error{"router: " + ok.error()};
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
PooledFloats gatherRows(const float *src, const std::vector<int64_t> &rows,
                        int64_t k, int64_t width) {
  PooledFloats out(rows.size() * size_t(width));
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy_n(src + rows[i] / k * width, width,
                out.begin() + int64_t(i) * width);
  return out;
}
} // namespace

PooledFloats MoeLayer::slice(const float *w, size_t k, int64_t e) const {
  const int64_t O = outer_[k], I = inner_[k], E = layer_.experts;
  PooledFloats part(size_t(O * I));
  for (int64_t o = 0; o < O; ++o)
    std::copy_n(w + (o * E + e) * I, I, part.begin() + o * I);
  return part;
}

void MoeLayer::unslice(const float *part, float *w, size_t k, int64_t e) const {
  const int64_t O = outer_[k], I = inner_[k], E = layer_.experts;
  for (int64_t o = 0; o < O; ++o)
    std::copy_n(part + o * I, I, w + (o * E + e) * I);
}

Result<MoeLayer::Forward>
MoeLayer::forward(const float *x, int64_t batch, const float *router,
                  const std::vector<const float *> &weights) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  Forward out;
  out.y.resize(size_t(batch * layer_.dOut));
  auto routing = forwardInto(x, batch, router, weights, out.y.data());
  if (!routing)
    return Error{routing.error()};
  out.routing = std::move(*routing);
  return out;
}

Result<Routing>
MoeLayer::forwardInto(const float *x, int64_t batch, const float *router,
                      const std::vector<const float *> &weights,
                      float *y) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  const int64_t E = layer_.experts;
  PooledFloats logits(size_t(batch * E));
  auto cs = workers::chunks(batch, threads_, minRowsPerThread_);
  auto ok = workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    auto aux = forwardLowered(x + cs[c].start * layer_.dIn, cs[c].rows,
                              router, weights, y + cs[c].start * layer_.dOut,
                              logits.data() + cs[c].start * E);
    if (!aux)
      return Error{aux.error()};
    return true;
  });
  if (!ok)
    return Error{ok.error()};
  // The statistics of the whole batch (the chunks' aux losses do not add
  // up to it), from the same logits the function routed.
  return routeTokens(logits.data(), batch, E, layer_.topK);
}

Result<Routing>
MoeLayer::forwardGrouped(const float *x, int64_t batch, const float *router,
                         const std::vector<const float *> &weights,
                         float *yOut) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  auto routing = route(x, batch, router);
  if (!routing)
    return routing;
  const Routing &r = *routing;
  const int64_t n = layer_.dIn, m = layer_.dOut, K = layer_.topK;
  std::fill_n(yOut, batch * m, 0.0f);
  Groups g = group(r);
  // Each expert's gated rows are added to y in expert order (a fixed order,
  // so results are deterministic).
  PooledFloats ys;
  for (int64_t e = 0; e < r.experts; ++e) {
    const auto &rows = g[size_t(e)];
    if (rows.empty())
      continue;
    auto xs = gatherRows(x, rows, K, n);
    auto w1 = slice(weights[0], 0, e), w2 = slice(weights[1], 1, e);
    ys.resize(rows.size() * size_t(m));
    auto ok = expert_->forwardInto(xs.data(), int64_t(rows.size()),
                                   {w1.data(), w2.data()}, ys.data());
    if (!ok)
      return Error{ok.error()};
    for (size_t i = 0; i < rows.size(); ++i) {
      const float gate = r.gate[size_t(rows[i])];
      const float *row = &ys[i * size_t(m)];
      float *y = yOut + rows[i] / K * m;
      for (int64_t j = 0; j < m; ++j)
        y[j] += gate * row[j];
    }
  }
  return routing;
}

Result<float>
MoeLayer::forwardLowered(const float *x, int64_t batch, const float *router,
                         const std::vector<const float *> &weights,
                         float *y, float *logitsOut) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  const EinsumTerm &t = layer_.terms[0];
  std::vector<Descriptor> operands;
  operands.emplace_back(x, std::vector<int64_t>{batch, layer_.dIn});
  operands.emplace_back(router, std::vector<int64_t>{layer_.dIn, layer_.experts});
  for (size_t k = 0; k < 2; ++k) // every letter, the rank letter included
    operands.emplace_back(weights[k], t.shape(t.weights[k]));
  // Results: y (rank 2), the aux loss (rank 0), the logits (rank 2).
  constexpr size_t aux = descriptorWords(2), logits = aux + descriptorWords(0);
  int64_t results[logits + descriptorWords(2)] = {};
  callPacked(lowered_->entry(0), results, operands);
  std::vector<const void *> inputs = {x, router, weights[0], weights[1]};
  takeResult(results, 2, inputs, y);
  float loss = 0;
  takeResult(results + aux, 0, inputs, &loss);
  takeResult(results + logits, 2, inputs, logitsOut);
  return loss;
}

Result<bool>
MoeLayer::forwardAllExperts(const float *x, int64_t batch, const float *router,
                            const std::vector<const float *> &weights,
                            float *y) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  auto routing = route(x, batch, router);
  if (!routing)
    return Error{routing.error()};
  const Routing &r = *routing;
  const int64_t m = layer_.dOut, K = layer_.topK;
  std::fill_n(y, batch * m, 0.0f);
  PooledFloats ys(size_t(batch * m));
  for (int64_t e = 0; e < r.experts; ++e) {
    auto w1 = slice(weights[0], 0, e), w2 = slice(weights[1], 1, e);
    auto ok = expert_->forwardInto(x, batch, {w1.data(), w2.data()}, ys.data());
    if (!ok)
      return Error{ok.error()};
    for (int64_t t = 0; t < batch; ++t) {
      float gate = 0;
      for (int64_t s = 0; s < K; ++s)
        if (r.expert[size_t(t * K + s)] == e)
          gate = r.gate[size_t(t * K + s)];
      for (int64_t j = 0; j < m; ++j)
        y[t * m + j] += gate * ys[size_t(t * m + j)];
    }
  }
  return true;
}

std::vector<float>
MoeLayer::naiveReference(const float *x, int64_t rows, const float *router,
                         const std::vector<const float *> &weights) const {
  const int64_t O = outer_[0], I = inner_[0], E = layer_.experts;
  // The router by plain loops too.
  std::vector<float> logits(size_t(rows * E), 0.0f);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t i = 0; i < layer_.dIn; ++i)
      for (int64_t e = 0; e < E; ++e)
        logits[size_t(t * E + e)] += x[t * layer_.dIn + i] * router[i * E + e];
  Routing r = routeTokens(logits.data(), rows, E, layer_.topK);
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

Result<bool> MoeLayer::backwardLowered(const float *x, const float *dy,
                                       int64_t batch, const float *router,
                                       const std::vector<const float *> &weights,
                                       float auxWeight, float *dx,
                                       float *dRouter,
                                       const std::vector<float *> &dw) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  if (dw.size() != weights.size())
    return Error{fmt::format("{} weight gradient buffers given for {} weights",
                             dw.size(), weights.size())};
  const EinsumTerm &t = layer_.terms[0];
  const std::vector<int64_t> routerShape = {layer_.dIn, layer_.experts};
  std::vector<Descriptor> operands;
  operands.emplace_back(x, std::vector<int64_t>{batch, layer_.dIn});
  operands.emplace_back(router, routerShape);
  for (size_t k = 0; k < 2; ++k)
    operands.emplace_back(weights[k], t.shape(t.weights[k]));
  operands.emplace_back(dy, std::vector<int64_t>{batch, layer_.dOut});
  operands.emplace_back(&auxWeight, std::vector<int64_t>{});
  // Results: dx, dRouter (rank 2), dW1, dW2 (their weights' ranks).
  const size_t r1 = t.weights[0].size(), r2 = t.weights[1].size();
  const size_t at[4] = {0, descriptorWords(2), 2 * descriptorWords(2),
                        2 * descriptorWords(2) + descriptorWords(r1)};
  std::vector<int64_t> results(at[3] + descriptorWords(r2));
  callPacked(loweredBackward_->entry(0), results.data(), operands);
  std::vector<const void *> inputs = {x, router, weights[0], weights[1], dy};
  takeResult(results.data() + at[0], 2, inputs, dx);
  takeResult(results.data() + at[1], 2, inputs, dRouter);
  takeResult(results.data() + at[2], r1, inputs, dw[0]);
  takeResult(results.data() + at[3], r2, inputs, dw[1]);
  return true;
}

template <class Into>
Result<MoeLayer::Gradients> MoeLayer::intoFresh(int64_t batch,
                                                Into into) const {
  if (auto bad = badCall(2, batch))
    return Error{*bad};
  Gradients g;
  g.dx.assign(size_t(batch * layer_.dIn), 0.0f);
  g.dRouter.assign(routerSize(), 0.0f);
  GradientBuffers buffers{g.dx.data(), g.dRouter.data(), {}};
  for (size_t k = 0; k < 2; ++k) {
    g.dw.emplace_back(weightSize(k), 0.0f);
    buffers.dw.push_back(g.dw.back().data());
  }
  auto routing = into(buffers);
  if (!routing)
    return Error{routing.error()};
  g.routing = std::move(*routing);
  return g;
}

Result<MoeLayer::Gradients>
MoeLayer::backward(const float *x, const float *dy, int64_t batch,
                   const float *router,
                   const std::vector<const float *> &weights,
                   double auxWeight) const {
  return intoFresh(batch, [&](const GradientBuffers &out) {
    return backwardInto(x, dy, batch, router, weights, auxWeight, out);
  });
}

Result<Routing>
MoeLayer::backwardRouting(const float *x, int64_t batch, const float *router,
                          const std::vector<const float *> &weights,
                          const GradientBuffers &out) const {
  if (auto bad = badCall(weights.size(), batch))
    return Error{*bad};
  if (out.dw.size() != weights.size())
    return Error{fmt::format("{} weight gradient buffers given for {} weights",
                             out.dw.size(), weights.size())};
  return route(x, batch, router);
}

Result<Routing>
MoeLayer::backwardInto(const float *x, const float *dy, int64_t batch,
                       const float *router,
                       const std::vector<const float *> &weights,
                       double auxWeight, const GradientBuffers &out) const {
  auto routing = backwardRouting(x, batch, router, weights, out);
  if (!routing)
    return routing;
  const int64_t n = layer_.dIn, m = layer_.dOut;
  auto cs = workers::chunks(batch, threads_, minRowsPerThread_);
  // Chunk c's router and weight gradients; chunk 0's go straight to `out`.
  std::vector<std::array<PooledFloats, 3>> parts(cs.size());
  for (size_t c = 1; c < cs.size(); ++c) {
    parts[c][0].resize(routerSize());
    for (size_t k = 0; k < 2; ++k)
      parts[c][1 + k].resize(weightSize(k));
  }
  const bool oneChunk = cs.size() == 1;
  auto ok = workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    auto &p = parts[c];
    float *dRouter = c ? p[0].data() : out.dRouter;
    std::vector<float *> dw = {c ? p[1].data() : out.dw[0],
                               c ? p[2].data() : out.dw[1]};
    return backwardLowered(x + cs[c].start * n, dy + cs[c].start * m,
                           cs[c].rows, router, weights,
                           oneChunk ? float(auxWeight) : 0.0f,
                           out.dx + cs[c].start * n, dRouter, dw);
  });
  if (!ok)
    return Error{ok.error()};
  for (size_t c = 1; c < cs.size(); ++c) {
    addInto(out.dRouter, parts[c][0].data(), routerSize());
    for (size_t k = 0; k < 2; ++k)
      addInto(out.dw[k], parts[c][1 + k].data(), weightSize(k));
  }
  if (!oneChunk && auxWeight != 0) {
    // The aux loss's gradient from the whole batch's routing (zero dgate
    // leaves only that term), through the router.
    PooledFloats none(size_t(batch * layer_.topK), 0.0f);
    auto dl = routeBackward(*routing, none.data(), auxWeight);
    auto ok = routerBackward(x, batch, router, dl.data(), out.dx, out.dRouter);
    if (!ok)
      return Error{ok.error()};
  }
  return routing;
}

Result<bool> MoeLayer::routerBackward(const float *x, int64_t batch,
                                     const float *router,
                                     const float *dlogits, float *dx,
                                     float *dRouter) const {
  PooledFloats dxr(size_t(batch * layer_.dIn)),
      dwr(size_t(layer_.dIn * layer_.experts));
  auto ok = router_->backwardInto(x, dlogits, batch, {router}, dxr.data(),
                                  {dwr.data()});
  if (!ok)
    return Error{"router: " + ok.error()};
  addInto(dx, dxr.data(), dxr.size());
  addInto(dRouter, dwr.data(), dwr.size());
  return true;
}

Result<MoeLayer::Gradients>
MoeLayer::backwardGrouped(const float *x, const float *dy, int64_t batch,
                          const float *router,
                          const std::vector<const float *> &weights,
                          double auxWeight) const {
  return intoFresh(batch, [&](const GradientBuffers &out) {
    return backwardGroupedInto(x, dy, batch, router, weights, auxWeight, out);
  });
}

Result<Routing> MoeLayer::backwardGroupedInto(
    const float *x, const float *dy, int64_t batch, const float *router,
    const std::vector<const float *> &weights, double auxWeight,
    const GradientBuffers &out) const {
  auto routing = backwardRouting(x, batch, router, weights, out);
  if (!routing)
    return routing;
  const Routing &r = *routing;
  const int64_t n = layer_.dIn, m = layer_.dOut, K = layer_.topK,
                E = layer_.experts;
  // Sums start from zero; idle experts' weight gradients stay zero.
  std::fill_n(out.dx, batch * n, 0.0f);
  std::fill_n(out.dRouter, routerSize(), 0.0f);
  for (size_t k = 0; k < 2; ++k)
    std::fill_n(out.dw[k], weightSize(k), 0.0f);
  Groups g = group(r);
  PooledFloats dgate(size_t(batch * K), 0.0f), dxSlots(size_t(batch * K * n));
  PooledFloats ys, dxs;
  std::array<PooledFloats, 2> dws;
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
    ys.resize(size_t(c * m));
    auto ok = expert_->forwardInto(xs.data(), c, {w1.data(), w2.data()},
                                   ys.data());
    if (!ok)
      return Error{ok.error()};
    dxs.resize(size_t(c * n));
    dws[0].resize(w1.size());
    dws[1].resize(w2.size());
    ok = expert_->backwardInto(xs.data(), dys.data(), c,
                               {w1.data(), w2.data()}, dxs.data(),
                               {dws[0].data(), dws[1].data()});
    if (!ok)
      return Error{ok.error()};
    for (int64_t i = 0; i < c; ++i) {
      const int64_t slot = rows[size_t(i)], t = slot / K;
      double dot = 0;
      for (int64_t j = 0; j < m; ++j)
        dot += double(dy[t * m + j]) * double(ys[size_t(i * m + j)]);
      dgate[size_t(slot)] = float(dot);
      std::copy_n(dxs.begin() + i * n, n, dxSlots.begin() + slot * n);
    }
    unslice(dws[0].data(), out.dw[0], 0, e);
    unslice(dws[1].data(), out.dw[1], 1, e);
  }
  auto dl = routeBackward(r, dgate.data(), auxWeight);
  // dx = Σ_slots dx_slot + dlogits·Wgᵀ; dWg = xᵀ·dlogits.
  for (int64_t t = 0; t < batch; ++t) {
    float *dxt = out.dx + t * n;
    for (int64_t s = 0; s < K; ++s) {
      const float *part = &dxSlots[size_t((t * K + s) * n)];
      for (int64_t i = 0; i < n; ++i)
        dxt[i] += part[i];
    }
  }
  auto ok = routerBackward(x, batch, router, dl.data(), out.dx, out.dRouter);
  if (!ok)
    return Error{ok.error()};
  return routing;
}

} // namespace einstruct
