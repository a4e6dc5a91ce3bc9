// The C ABI of runtime/einstruct.h over the CPU JIT.
#include "runtime/einstruct.h"
#include "compiler/cpu/JitLayer.h"
#include "compiler/frontend/SpecReader.h"
#include "search/Init.h"

#include <random>
#include <fmt/format.h>

struct einstruct_layer {
  std::unique_ptr<einstruct::JitLayer> jit;
};

namespace {

thread_local std::string lastError;

int failWith(int status, std::string message) {
  lastError = std::move(message);
  return status;
}

std::vector<const float *> weightList(const einstruct_layer *l,
                                      const float *const *weights) {
  return std::vector<const float *>(
      weights, weights + l->jit->weightShapes().size());
}

bool weightsPresent(const einstruct_layer *l, const float *const *w) {
  if (!w)
    return false;
  for (size_t k = 0; k < l->jit->weightShapes().size(); ++k)
    if (!w[k])
      return false;
  return true;
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
  if (layers->front().experts)
    return failWith(EINSTRUCT_ERR_SPEC,
                    "BTT-MoE layers need a router and are not in the C ABI "
                    "yet: run them with `einstruct run --router` or the "
                    "generated CUDA NAME_moe_* functions");
  auto jit = einstruct::JitLayer::compile(layers->front());
  if (!jit)
    return failWith(EINSTRUCT_ERR_COMPILE, jit.error());
  *out = new einstruct_layer{std::move(*jit)};
  lastError.clear();
  return EINSTRUCT_OK;
}

void einstruct_layer_destroy(einstruct_layer *l) { delete l; }

int64_t einstruct_layer_d_in(const einstruct_layer *l) {
  return l ? l->jit->layer().dIn : 0;
}
int64_t einstruct_layer_d_out(const einstruct_layer *l) {
  return l ? l->jit->layer().dOut : 0;
}
int64_t einstruct_layer_macs(const einstruct_layer *l) {
  if (!l)
    return 0;
  auto a = einstruct::analyze(l->jit->layer());
  return a ? a->flops : 0;
}
int einstruct_layer_num_weights(const einstruct_layer *l) {
  return l ? int(l->jit->weightShapes().size()) : 0;
}

int einstruct_layer_weight_shape(const einstruct_layer *l, int k,
                                 int64_t *dims, int maxRank) {
  if (!l || !dims || k < 0 || k >= einstruct_layer_num_weights(l))
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("weight index {} is out of range", k));
  const auto &s = l->jit->weightShapes()[size_t(k)];
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
  auto stds = einstruct::initStd(l->jit->layer());
  if (!stds)
    return failWith(EINSTRUCT_ERR_SPEC, stds.error());
  std::mt19937_64 rng(seed);
  const auto &shapes = l->jit->weightShapes();
  for (size_t k = 0; k < shapes.size(); ++k) {
    std::normal_distribution<float> normal(0.0f, float((*stds)[k]));
    int64_t n = 1;
    for (int64_t d : shapes[k])
      n *= d;
    for (int64_t i = 0; i < n; ++i)
      weights[k][i] = normal(rng);
  }
  return EINSTRUCT_OK;
}

int einstruct_layer_forward(const einstruct_layer *l, const float *x,
                            int64_t batch, const float *const *weights,
                            float *y) {
  if (!l || !x || !y || !weightsPresent(l, weights))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer, array or weight");
  if (batch < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("batch = {} must be positive", batch));
  auto ok = l->jit->forwardInto(x, batch, weightList(l, weights), y);
  if (!ok)
    return failWith(EINSTRUCT_ERR_ARGUMENT, ok.error());
  return EINSTRUCT_OK;
}

int einstruct_layer_backward(const einstruct_layer *l, const float *x,
                             const float *dy, int64_t batch,
                             const float *const *weights, float *dx,
                             float *const *dweights) {
  if (!l || !x || !dy || !dx || !weightsPresent(l, weights) ||
      !weightsPresent(l, const_cast<const float *const *>(dweights)))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer, array or weight");
  if (batch < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("batch = {} must be positive", batch));
  std::vector<float *> dw(dweights, dweights + l->jit->weightShapes().size());
  auto ok = l->jit->backwardInto(x, dy, batch, weightList(l, weights), dx, dw);
  if (!ok)
    return failWith(EINSTRUCT_ERR_ARGUMENT, ok.error());
  return EINSTRUCT_OK;
}

const char *einstruct_last_error(void) { return lastError.c_str(); }

} // extern "C"
