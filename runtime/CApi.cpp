// The C ABI of runtime/einstruct.h over the CPU JIT (JitLayer) and, for
// BTT-MoE, the routed CPU layer (MoeLayer).
#include "runtime/einstruct.h"
#include "compiler/cpu/JitLayer.h"
#include "compiler/cpu/MoeLayer.h"
#include "compiler/frontend/SpecReader.h"
#include "search/Init.h"

#include <cmath>
#include <random>
#include <fmt/format.h>

struct einstruct_layer {
  einstruct::Layer layer;
  std::vector<std::vector<int64_t>> shapes; // every weight, router last
  std::unique_ptr<einstruct::JitLayer> jit; // all but BTT-MoE
  std::unique_ptr<einstruct::MoeLayer> moe; // BTT-MoE
  double auxWeight = 0.01;                  // BTT-MoE backward
  // Of the last BTT-MoE call (a layer is used by one thread at a time).
  mutable einstruct::Routing routing;
};

namespace {

thread_local std::string lastError;

int failWith(int status, std::string message) {
  lastError = std::move(message);
  return status;
}

bool weightsPresent(const einstruct_layer *l, const float *const *w) {
  if (!w)
    return false;
  for (size_t k = 0; k < l->shapes.size(); ++k)
    if (!w[k])
      return false;
  return true;
}

// Checks what every call needs: a layer, arrays, weights and batch >= 1.
int checkCall(const einstruct_layer *l, std::initializer_list<const void *> arrays,
              const float *const *weights, int64_t batch) {
  for (const void *a : arrays)
    if (!a)
      return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer, array or weight");
  if (!l || !weightsPresent(l, weights))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer, array or weight");
  if (batch < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("batch = {} must be positive", batch));
  return EINSTRUCT_OK;
}

// The expert weights (all but the router) as the layer classes take them.
std::vector<const float *> layerWeights(const einstruct_layer *l,
                                        const float *const *weights) {
  size_t n = l->shapes.size() - (l->moe ? 1 : 0);
  return std::vector<const float *>(weights, weights + n);
}

const float *router(const einstruct_layer *l, const float *const *weights) {
  return weights[l->shapes.size() - 1];
}

} // namespace

extern "C" {

int einstruct_layer_create_cpu(const char *spec, einstruct_layer **out) {
  if (!spec || !out)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null spec or output pointer");
  *out = nullptr;
  auto layers = einstruct::readSpecJson(spec, "spec");
  if (!layers)
    return failWith(EINSTRUCT_ERR_SPEC, layers.error());
  if (layers->size() != 1)
    return failWith(EINSTRUCT_ERR_SPEC,
                    fmt::format("spec: holds {} specs; give one object",
                                layers->size()));
  auto l = std::make_unique<einstruct_layer>();
  l->layer = layers->front();
  l->shapes = einstruct::weightShapes(l->layer);
  if (l->layer.experts) {
    auto moe = einstruct::MoeLayer::compile(l->layer);
    if (!moe)
      return failWith(EINSTRUCT_ERR_COMPILE, moe.error());
    l->moe = std::move(*moe);
    l->shapes.push_back({l->layer.dIn, l->layer.experts});
  } else {
    auto jit = einstruct::JitLayer::compile(l->layer);
    if (!jit)
      return failWith(EINSTRUCT_ERR_COMPILE, jit.error());
    l->jit = std::move(*jit);
  }
  *out = l.release();
  lastError.clear();
  return EINSTRUCT_OK;
}

void einstruct_layer_destroy(einstruct_layer *l) { delete l; }

int64_t einstruct_layer_d_in(const einstruct_layer *l) {
  return l ? l->layer.dIn : 0;
}
int64_t einstruct_layer_d_out(const einstruct_layer *l) {
  return l ? l->layer.dOut : 0;
}
int64_t einstruct_layer_macs(const einstruct_layer *l) {
  if (!l)
    return 0;
  auto a = einstruct::analyze(l->layer);
  return a ? a->flops + a->routerFlops : 0;
}
int einstruct_layer_num_weights(const einstruct_layer *l) {
  return l ? int(l->shapes.size()) : 0;
}
int64_t einstruct_layer_experts(const einstruct_layer *l) {
  return l ? l->layer.experts : 0;
}

int einstruct_layer_weight_shape(const einstruct_layer *l, int k,
                                 int64_t *dims, int maxRank) {
  if (!l || !dims || k < 0 || k >= einstruct_layer_num_weights(l))
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("weight index {} is out of range", k));
  const auto &s = l->shapes[size_t(k)];
  if (int(s.size()) > maxRank)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("weight {} has rank {} > max_rank {}", k,
                                s.size(), maxRank));
  std::copy(s.begin(), s.end(), dims);
  return int(s.size());
}

int einstruct_layer_init_weights(const einstruct_layer *l, uint64_t seed,
                                 float *const *weights) {
  if (!l || !weightsPresent(l, const_cast<const float *const *>(weights)))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer or weight");
  auto stds = einstruct::initStd(l->layer);
  if (!stds)
    return failWith(EINSTRUCT_ERR_SPEC, stds.error());
  std::mt19937_64 rng(seed);
  for (size_t k = 0; k < stds->size(); ++k) {
    std::normal_distribution<float> normal(0.0f, float((*stds)[k]));
    for (int64_t i = 0; i < einstruct::elementCount(l->shapes[k]); ++i)
      weights[k][i] = normal(rng);
  }
  if (l->moe) // the router starts at zero (structures.md §3)
    std::fill_n(weights[stds->size()], einstruct::elementCount(l->shapes.back()),
                0.0f);
  return EINSTRUCT_OK;
}

int einstruct_layer_forward(const einstruct_layer *l, const float *x,
                            int64_t batch, const float *const *weights,
                            float *y) {
  if (int s = checkCall(l, {x, y}, weights, batch))
    return s;
  if (l->moe) {
    auto r = l->moe->forwardInto(x, batch, router(l, weights),
                                 layerWeights(l, weights), y);
    if (!r)
      return failWith(EINSTRUCT_ERR_ARGUMENT, r.error());
    l->routing = std::move(*r);
    return EINSTRUCT_OK;
  }
  auto ok = l->jit->forwardInto(x, batch, layerWeights(l, weights), y);
  if (!ok)
    return failWith(EINSTRUCT_ERR_ARGUMENT, ok.error());
  return EINSTRUCT_OK;
}

int einstruct_layer_backward(const einstruct_layer *l, const float *x,
                             const float *dy, int64_t batch,
                             const float *const *weights, float *dx,
                             float *const *dweights) {
  if (int s = checkCall(l, {x, dy, dx}, weights, batch))
    return s;
  if (!weightsPresent(l, const_cast<const float *const *>(dweights)))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null weight gradient");
  if (l->moe) {
    auto g = l->moe->backward(x, dy, batch, router(l, weights),
                              layerWeights(l, weights), l->auxWeight);
    if (!g)
      return failWith(EINSTRUCT_ERR_ARGUMENT, g.error());
    std::copy(g->dx.begin(), g->dx.end(), dx);
    for (size_t k = 0; k < g->dw.size(); ++k)
      std::copy(g->dw[k].begin(), g->dw[k].end(), dweights[k]);
    std::copy(g->dRouter.begin(), g->dRouter.end(), dweights[g->dw.size()]);
    l->routing = std::move(g->routing);
    return EINSTRUCT_OK;
  }
  std::vector<float *> dw(dweights, dweights + l->shapes.size());
  auto ok = l->jit->backwardInto(x, dy, batch, layerWeights(l, weights), dx, dw);
  if (!ok)
    return failWith(EINSTRUCT_ERR_ARGUMENT, ok.error());
  return EINSTRUCT_OK;
}

int einstruct_layer_set_threads(einstruct_layer *l, int threads) {
  if (!l)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer");
  if (threads < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("threads = {} must be at least 1", threads));
  if (l->moe)
    l->moe->setThreads(threads);
  else
    l->jit->setThreads(threads);
  return EINSTRUCT_OK;
}

int einstruct_layer_set_aux_weight(einstruct_layer *l, double weight) {
  if (!l || !l->moe)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "the aux-loss weight belongs to BTT-MoE layers");
  if (!(weight >= 0) || !std::isfinite(weight))
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("aux weight {} must be finite and >= 0", weight));
  l->auxWeight = weight;
  return EINSTRUCT_OK;
}

int einstruct_layer_routing(const einstruct_layer *l, int64_t *tokensPerExpert,
                            double *auxLoss, double *entropy) {
  if (!l || !l->moe)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "routing statistics belong to BTT-MoE layers");
  if (l->routing.counts.empty())
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "no forward or backward call has run on this layer yet");
  if (tokensPerExpert)
    std::copy(l->routing.counts.begin(), l->routing.counts.end(),
              tokensPerExpert);
  if (auxLoss)
    *auxLoss = l->routing.auxLoss;
  if (entropy)
    *entropy = l->routing.entropy;
  return EINSTRUCT_OK;
}

const char *einstruct_last_error(void) { return lastError.c_str(); }

} // extern "C"
