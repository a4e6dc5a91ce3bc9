// The C ABI of runtime/einstruct.h over one CompiledLayer per layer: the CPU
// JIT, the routed CPU BTT-MoE or the generated CUDA kernels (the mixers'
// entry points: MixerCApi.cpp).
#include "compiler/cpu/ObjectCache.h"
#include "compiler/cuda/CudaDevice.h"
#include "compiler/cuda/CudaLayer.h"
#include "compiler/frontend/ModelReader.h"
#include "compiler/frontend/Report.h"
#include "compiler/frontend/SpecReader.h"
#include "compiler/frontend/Sweep.h"
#include "compiler/interop/Checkpoint.h"
#include "compiler/project/Projection.h"
#include "runtime/CApiErrors.h"
#include "runtime/CompiledLayer.h"
#include "runtime/einstruct.h"
#include "search/Checked.h"
#include "search/Init.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <fmt/format.h>

struct einstruct_layer {
  einstruct::Layer layer;
  std::vector<std::vector<int64_t>> shapes; // every weight, router last
  std::unique_ptr<einstruct::CompiledLayer> compiled;
  double auxWeight = 0.01; // BTT-MoE backward

  bool isMoe() const { return layer.experts > 0; }
  bool onCuda() const { return compiled->device() >= 0; }
};

namespace einstruct::capi {
thread_local std::string lastError;
} // namespace einstruct::capi

using einstruct::capi::failWith;
using einstruct::capi::lastError;
using einstruct::capi::statusOf;

namespace {

template <class P> bool weightsPresent(const einstruct_layer *l, P const *w) {
  if (!w)
    return false;
  for (size_t k = 0; k < l->shapes.size(); ++k)
    if (!w[k])
      return false;
  return true;
}

// Checks what every call needs: a layer, arrays, weights and batch >= 1.
template <class P>
int checkCall(const einstruct_layer *l, std::initializer_list<const void *> arrays,
              P const *weights, int64_t batch) {
  for (const void *a : arrays)
    if (!a)
      return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer, array or weight");
  if (!l || !weightsPresent(l, weights))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer, array or weight");
  // Every array is batch rows of at most this many elements.
  return einstruct::capi::checkBatch(
      batch, std::max(l->layer.dIn, l->layer.dOut), "rows");
}

// The one spec of `spec` (a JSON object) with its weight shapes, router last.
int readLayer(const char *spec, einstruct_layer **out,
              std::unique_ptr<einstruct_layer> &l) {
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
  l = std::make_unique<einstruct_layer>();
  l->layer = layers->front();
  l->shapes = einstruct::weightShapes(l->layer);
  if (l->isMoe())
    l->shapes.push_back({l->layer.dIn, l->layer.experts});
  if (l->layer.bias)
    l->shapes.push_back({l->layer.dOut});
  return EINSTRUCT_OK;
}

int readDType(const char *dtype, einstruct::CudaDType &t) {
  if (auto known = einstruct::dtypeFromName(dtype ? dtype : "")) {
    t = *known;
    return EINSTRUCT_OK;
  }
  return failWith(EINSTRUCT_ERR_ARGUMENT,
                  fmt::format("dtype '{}' is not one of f32, bf16, f16",
                              dtype ? dtype : "(null)"));
}

// `text` as a malloc'ed C string in *out.
int returnText(const std::string &text, char **out) {
  char *p = static_cast<char *>(std::malloc(text.size() + 1));
  if (!p)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "out of memory");
  std::memcpy(p, text.c_str(), text.size() + 1);
  *out = p;
  lastError.clear();
  return EINSTRUCT_OK;
}

} // namespace

extern "C" {

int einstruct_analyze(const char *specJson, char **out) {
  if (!specJson || !out)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null spec or output pointer");
  *out = nullptr;
  auto layers = einstruct::readSpecJson(specJson, "spec");
  if (!layers)
    return failWith(EINSTRUCT_ERR_SPEC, layers.error());
  nlohmann::json all = nlohmann::json::array();
  for (const auto &l : *layers) {
    auto a = einstruct::analyze(l);
    if (!a)
      return failWith(EINSTRUCT_ERR_SPEC, l.label + ": " + a.error());
    all.push_back(einstruct::analysisJson(l, *a));
  }
  return returnText(all.dump(), out);
}

int einstruct_search(const char *sweepJson, char **out) {
  if (!sweepJson || !out)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null config or output pointer");
  *out = nullptr;
  auto c = einstruct::readSweepJson(sweepJson, "search");
  if (!c)
    return failWith(EINSTRUCT_ERR_SPEC, c.error());
  std::string rows = "[";
  size_t shape = SIZE_MAX;
  std::vector<einstruct::Candidate> all;
  for (const auto &r : einstruct::sweepRows(*c)) {
    if (r.shape != shape) {
      einstruct::SearchSpace space = c->space;
      std::tie(space.dIn, space.dOut) = c->shapes[r.shape];
      auto e = einstruct::enumerate(space);
      if (!e)
        return failWith(EINSTRUCT_ERR_SPEC, e.error());
      all = std::move(*e);
      shape = r.shape;
    }
    rows += (rows.size() > 1 ? "," : "") + einstruct::sweepRowJson(*c, r, all);
  }
  return returnText(rows + "]", out);
}

int einstruct_search_model(const char *modelJson, char **out) {
  if (!modelJson || !out)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null model or output pointer");
  *out = nullptr;
  auto m = einstruct::readModelJson(modelJson, "model");
  if (!m)
    return failWith(EINSTRUCT_ERR_SPEC, m.error());
  auto budget = einstruct::modelBudget(*m, "model");
  if (!budget)
    return failWith(EINSTRUCT_ERR_SPEC, budget.error());
  auto r = einstruct::searchModel(m->layers, *budget, einstruct::SearchSpace{},
                                  einstruct::Constraints{});
  if (!r)
    return failWith(EINSTRUCT_ERR_SPEC, r.error());
  return returnText(einstruct::modelResultJson(*r, m->name).dump(), out);
}

int einstruct_project(const char *specJson, const float *dense,
                      float *const *weights, double *relativeError) {
  std::unique_ptr<einstruct_layer> l;
  einstruct_layer *unused = nullptr;
  if (int s = readLayer(specJson, &unused, l))
    return s;
  if (l->isMoe())
    return failWith(EINSTRUCT_ERR_SPEC, "a BTT-MoE layer has no projection "
                                        "from one dense matrix");
  if (!dense || !weightsPresent(l.get(), weights))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null dense matrix or weight");
  const int64_t n = l->layer.dOut * l->layer.dIn;
  einstruct::NpyArray w{{l->layer.dOut, l->layer.dIn},
                        std::vector<float>(dense, dense + n)};
  auto p = einstruct::projectDense(l->layer, w);
  if (!p)
    return failWith(EINSTRUCT_ERR_SPEC, p.error());
  for (size_t k = 0; k < p->weights.size(); ++k)
    std::copy(p->weights[k].data.begin(), p->weights[k].data.end(),
              weights[k]);
  if (relativeError)
    *relativeError = p->relativeError;
  lastError.clear();
  return EINSTRUCT_OK;
}

int einstruct_import(const char *checkpoint, const char *source,
                     const char *optionsJson, const char *outDir,
                     char **manifest) {
  if (!checkpoint || !source || !outDir || !manifest)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "null checkpoint, source, directory or output pointer");
  *manifest = nullptr;
  auto from = einstruct::parseCheckpointSource(source);
  if (!from)
    return failWith(EINSTRUCT_ERR_ARGUMENT, from.error());
  einstruct::ImportOptions o;
  if (optionsJson) {
    auto j = nlohmann::json::parse(optionsJson, nullptr, false);
    if (!j.is_object())
      return failWith(EINSTRUCT_ERR_ARGUMENT, "options: not a JSON object");
    for (auto &[key, v] : j.items()) {
      if ((key == "layer" || key == "theta") && v.is_string()) {
        (key == "layer" ? o.only : o.theta) = v.get<std::string>();
      } else if (key == "normalized" && v.is_boolean()) {
        o.normalised = v.get<bool>();
      } else if ((key == "d_in" || key == "d_out" || key == "top_k") &&
                 v.is_number_integer() && v.get<int64_t>() >= 1 &&
                 v.get<int64_t>() <= einstruct::kMaxDim) {
        const int64_t n = v.get<int64_t>();
        if (key == "d_in")
          o.dIn = n;
        else if (key == "d_out")
          o.dOut = n;
        else
          o.topK = n;
      } else {
        return failWith(EINSTRUCT_ERR_ARGUMENT,
                        fmt::format("options.{}: unknown or of the wrong type "
                                    "(known: layer, theta: strings; d_in, "
                                    "d_out, top_k: positive integers; "
                                    "normalized: a boolean)",
                                    key));
      }
    }
  }
  auto tensors = einstruct::readCheckpoint(checkpoint);
  if (!tensors)
    return failWith(EINSTRUCT_ERR_SPEC, tensors.error());
  auto layers = einstruct::importCheckpoint(*tensors, *from, o);
  if (!layers)
    return failWith(EINSTRUCT_ERR_SPEC,
                    fmt::format("{}: {}", checkpoint, layers.error()));
  einstruct::OutputFiles out;
  const std::string text = einstruct::addImportFiles(*layers, outDir, out);
  if (auto ok = out.commit(); !ok)
    return failWith(EINSTRUCT_ERR_ARGUMENT, ok.error());
  return returnText(text, manifest);
}

void einstruct_free(char *p) { std::free(p); }

int einstruct_layer_create_cpu(const char *spec, einstruct_layer **out) {
  std::unique_ptr<einstruct_layer> l;
  if (int s = readLayer(spec, out, l))
    return s;
  auto compiled = einstruct::compileForCpu(l->layer);
  if (!compiled)
    return failWith(EINSTRUCT_ERR_COMPILE, compiled.error());
  l->compiled = std::move(*compiled);
  *out = l.release();
  lastError.clear();
  return EINSTRUCT_OK;
}

int einstruct_layer_create_cuda(const char *spec, const char *dtype,
                                int device, einstruct_layer **out) {
  std::unique_ptr<einstruct_layer> l;
  einstruct::CudaDType t;
  if (int s = readLayer(spec, out, l))
    return s;
  if (int s = readDType(dtype, t))
    return s;
  auto dev = einstruct::queryCudaDevice(device);
  if (!dev)
    return failWith(EINSTRUCT_ERR_DEVICE, dev.error());
  auto target = einstruct::targetFor(*dev, t);
  if (!target)
    return failWith(EINSTRUCT_ERR_DEVICE, target.error());
  auto compiled = einstruct::compileForCuda(l->layer, *target, device);
  if (!compiled)
    return failWith(EINSTRUCT_ERR_COMPILE, compiled.error());
  l->compiled = std::move(*compiled);
  *out = l.release();
  lastError.clear();
  return EINSTRUCT_OK;
}

int einstruct_cuda_prebuild(const char *spec, const char *dtype,
                            const char *arch, char *path, size_t pathSize) {
  std::unique_ptr<einstruct_layer> l;
  einstruct_layer *unused = nullptr;
  einstruct::CudaTarget target;
  if (int s = readLayer(spec, &unused, l))
    return s;
  if (int s = readDType(dtype, target.dtype))
    return s;
  if (!arch)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null arch");
  if (!einstruct::objectcache::directory())
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "the cache is off (EINSTRUCT_CACHE_DIR=off): there is "
                    "nowhere to keep a prebuilt library");
  target.arch = arch;
  auto cuda = einstruct::CudaLayer::load(l->layer, target);
  if (!cuda)
    return failWith(EINSTRUCT_ERR_COMPILE, cuda.error());
  const std::string &p = (*cuda)->libraryPath();
  if (path && pathSize) {
    if (p.size() >= pathSize)
      return failWith(EINSTRUCT_ERR_ARGUMENT,
                      fmt::format("path_size {} is too small for the {}-byte "
                                  "path",
                                  pathSize, p.size() + 1));
    std::copy(p.begin(), p.end(), path);
    path[p.size()] = 0;
  }
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
  if (!l || !weightsPresent(l, weights))
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
  // A router starts at zero (structures.md §3), and so does a bias.
  for (size_t k = stds->size(); k < l->shapes.size(); ++k)
    std::fill_n(weights[k], einstruct::elementCount(l->shapes[k]), 0.0f);
  return EINSTRUCT_OK;
}

} // extern "C"

namespace {

// A bias is the last weight; the compiled layer reads the ones before it.
int forward(const einstruct_layer *l, const void *x, int64_t batch,
            const void *const *weights, void *y, void *stream) {
  auto r = l->compiled->forward(x, batch, weights, y, stream);
  if (r && l->layer.bias)
    r = l->compiled->addBias(y, weights[l->shapes.size() - 1], batch,
                             l->layer.dOut, stream);
  return statusOf(r);
}

int backward(const einstruct_layer *l, const void *x, const void *dy,
             int64_t batch, const void *const *weights, void *dx,
             void *const *dweights, void *stream) {
  auto r = l->compiled->backward(x, dy, batch, weights, dx, dweights, stream,
                                 l->auxWeight);
  if (r && l->layer.bias)
    r = l->compiled->biasGradient(dy, dweights[l->shapes.size() - 1], batch,
                                  l->layer.dOut, stream);
  return statusOf(r);
}

// einstruct_layer_forward/_backward: float32 only, waited for.
int synchronous(const einstruct_layer *l, int status) {
  return status ? status : statusOf(l->compiled->synchronize());
}

int checkFloat(const einstruct_layer *l) {
  if (l->compiled->dtype() != einstruct::CudaDType::F32)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("the layer stores {}: call "
                                "einstruct_layer_forward_stream/_backward_stream",
                                einstruct::dtypeName(l->compiled->dtype())));
  return EINSTRUCT_OK;
}

int checkStream(const einstruct_layer *l, void *stream) {
  if (!l->onCuda() && stream)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "a CPU layer takes stream = NULL");
  return EINSTRUCT_OK;
}

template <class P> int checkGradients(const einstruct_layer *l, P const *dw) {
  if (!weightsPresent(l, dw))
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null weight gradient");
  return EINSTRUCT_OK;
}

} // namespace

extern "C" {

int einstruct_layer_forward(const einstruct_layer *l, const float *x,
                            int64_t batch, const float *const *weights,
                            float *y) {
  if (int s = checkCall(l, {x, y}, weights, batch))
    return s;
  if (int s = checkFloat(l))
    return s;
  return synchronous(
      l, forward(l, x, batch, reinterpret_cast<const void *const *>(weights),
                 y, nullptr));
}

int einstruct_layer_backward(const einstruct_layer *l, const float *x,
                             const float *dy, int64_t batch,
                             const float *const *weights, float *dx,
                             float *const *dweights) {
  if (int s = checkCall(l, {x, dy, dx}, weights, batch))
    return s;
  if (int s = checkGradients(l, dweights))
    return s;
  if (int s = checkFloat(l))
    return s;
  return synchronous(
      l, backward(l, x, dy, batch,
                  reinterpret_cast<const void *const *>(weights), dx,
                  reinterpret_cast<void *const *>(dweights), nullptr));
}

int einstruct_layer_forward_stream(const einstruct_layer *l, const void *x,
                                   int64_t batch, const void *const *weights,
                                   void *y, void *stream) {
  if (int s = checkCall(l, {x, y}, weights, batch))
    return s;
  if (int s = checkStream(l, stream))
    return s;
  return forward(l, x, batch, weights, y, stream);
}

int einstruct_layer_backward_stream(const einstruct_layer *l, const void *x,
                                    const void *dy, int64_t batch,
                                    const void *const *weights, void *dx,
                                    void *const *dweights, void *stream) {
  if (int s = checkCall(l, {x, dy, dx}, weights, batch))
    return s;
  if (int s = checkGradients(l, dweights))
    return s;
  if (int s = checkStream(l, stream))
    return s;
  return backward(l, x, dy, batch, weights, dx, dweights, stream);
}

int einstruct_layer_device(const einstruct_layer *l) {
  return l ? l->compiled->device() : -1;
}

const char *einstruct_layer_dtype(const einstruct_layer *l) {
  return einstruct::dtypeName(l ? l->compiled->dtype()
                                : einstruct::CudaDType::F32);
}

int einstruct_layer_set_routing_stats(einstruct_layer *l, int on) {
  if (!l || !l->isMoe())
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "routing statistics belong to BTT-MoE layers");
  l->compiled->setRoutingStats(on != 0);
  return EINSTRUCT_OK;
}

int einstruct_layer_set_threads(einstruct_layer *l, int threads) {
  if (!l)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null layer");
  if (threads < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("threads = {} must be at least 1", threads));
  return statusOf(l->compiled->setThreads(threads));
}

int einstruct_layer_set_aux_weight(einstruct_layer *l, double weight) {
  if (!l || !l->isMoe())
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
  if (!l || !l->isMoe())
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "routing statistics belong to BTT-MoE layers");
  if (!l->compiled->routingStats())
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "this CUDA layer does not gather routing statistics: "
                    "call einstruct_layer_set_routing_stats(layer, 1) first");
  const einstruct::Routing &routing = l->compiled->lastRouting();
  if (routing.counts.empty())
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "no forward or backward call has run on this layer yet");
  if (tokensPerExpert)
    std::copy(routing.counts.begin(), routing.counts.end(), tokensPerExpert);
  if (auxLoss)
    *auxLoss = routing.auxLoss;
  if (entropy)
    *entropy = routing.entropy;
  return EINSTRUCT_OK;
}

const char *einstruct_last_error(void) { return lastError.c_str(); }

} // extern "C"
