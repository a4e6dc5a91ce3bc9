#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/GemmPlan.h"
#include "compiler/cuda/LayerSources.h"
#include "compiler/passes/CudaPipeline.h"

#include <fmt/format.h>

namespace einstruct {
namespace {

// The emitted library's symbols are prefixed with this name.
constexpr const char *kName = "layer";

// Mirrors of the emitted header's structs (CudaEmitter.cpp, MoeSource.cpp).
struct LayerInfo {
  const char *name, *family, *einsum, *dtype;
  int64_t dIn, dOut, paddedIn, paddedOut;
  int64_t sizes[7], xStrides[7], w1Strides[7], w2Strides[7], yStrides[7];
  int64_t w1Elems, w2Elems;
  int dtypeBytes;
  size_t forwardSmem, backwardInputSmem;
};
struct MoeStats {
  double auxLoss, entropy;
  int64_t experts;
  int64_t counts[64];
};

using Stream = void *;

} // namespace

struct CudaLayer::Api {
  const LayerInfo *(*info)();
  // Plain layers.
  int (*forward)(const void *, const void *, const void *, void *, int64_t,
                 Stream) = nullptr;
  int (*backwardInput)(const void *, const void *, const void *, void *,
                       int64_t, Stream) = nullptr;
  size_t (*weightsWorkspace)(int64_t) = nullptr;
  int (*backwardWeights)(const void *, const void *, const void *,
                         const void *, void *, void *, int64_t, void *,
                         size_t, Stream) = nullptr;
  // One-weight layers (cuBLAS): weights as an array, one per term.
  size_t (*gemmWorkspace)(int64_t) = nullptr;
  int (*gemmForward)(const void *, const void *const *, void *, int64_t,
                     void *, size_t, Stream) = nullptr;
  int (*gemmBackwardInput)(const void *, const void *const *, void *, int64_t,
                           void *, size_t, Stream) = nullptr;
  int (*gemmBackwardWeights)(const void *, const void *, void *const *,
                             int64_t, void *, size_t, Stream) = nullptr;
  // BTT-MoE.
  size_t (*moeWorkspace)(int64_t) = nullptr;
  int (*moeForward)(const void *, const void *, const void *, const void *,
                    void *, int64_t, void *, size_t, MoeStats *,
                    Stream) = nullptr;
  int (*moeBackward)(const void *, const void *, const void *, const void *,
                     const void *, float, void *, void *, void *, void *,
                     int64_t, void *, size_t, Stream) = nullptr;
  // runtime_glue.cu's bias kernels.
  int (*addBias)(void *, const void *, int64_t, int64_t, int, Stream);
  int (*biasGradient)(const void *, void *, int64_t, int64_t, int, Stream);
};

using Scratch = CudaLibrary::Scratch;

CudaLayer::~CudaLayer() = default;

Result<std::unique_ptr<CudaLayer>> CudaLayer::load(const Layer &layer,
                                                   const CudaTarget &target,
                                                   int device) {
  // The compiler's path (IR, --einstruct-plan-cuda, the plan read back), so
  // the runtime builds what `einstruct compile --prebuild` puts in the cache.
  auto plan = planLayerThroughIr(layer, target);
  if (!plan)
    return Error{plan.error()};
  return load(std::move(*plan), device);
}

Result<std::unique_ptr<CudaLayer>> CudaLayer::load(LayerPlan plan, int device) {
  std::unique_ptr<CudaLayer> l(new CudaLayer);
  l->layer_ = plan.layer();
  l->target_ = plan.target();
  // The label (where the spec came from) is left out of the source, so the
  // same layer from a file, flags or the C ABI is one cache entry.
  plan.layer().label.clear();
  auto src = layerSources(plan, kName);
  if (!src)
    return Error{src.error()};
  auto lib = CudaLibrary::load(
      src->sources, kName, l->target_.arch, src->cublas, device,
      [&](CudaLibrary &opened) { return l->accept(opened); });
  if (!lib)
    return Error{lib.error()};
  l->lib_ = std::move(*lib);
  return l;
}

Result<bool> CudaLayer::accept(CudaLibrary &lib) {
  api_ = std::make_unique<Api>();
  Api &a = *api_;
  const std::string n = kName;
  bool ok = lib.bind(a.info, n + "_info") &&
            lib.bind(a.addBias, "einstruct_glue_add_bias") &&
            lib.bind(a.biasGradient, "einstruct_glue_bias_gradient");
  if (isGemmLayer(layer_))
    ok = ok && lib.bind(a.gemmWorkspace, n + "_workspace") &&
         lib.bind(a.gemmForward, n + "_forward") &&
         lib.bind(a.gemmBackwardInput, n + "_backward_input") &&
         lib.bind(a.gemmBackwardWeights, n + "_backward_weights");
  else if (layer_.experts)
    ok = ok && lib.bind(a.moeWorkspace, n + "_moe_workspace") &&
         lib.bind(a.moeForward, n + "_moe_forward") &&
         lib.bind(a.moeBackward, n + "_moe_backward");
  else
    ok = ok && lib.bind(a.forward, n + "_forward") &&
         lib.bind(a.backwardInput, n + "_backward_input") &&
         lib.bind(a.weightsWorkspace, n + "_backward_weights_workspace") &&
         lib.bind(a.backwardWeights, n + "_backward_weights");
  if (!ok)
    return Error{lib.path() + " lacks einstruct's entry points"};
  const LayerInfo *info = a.info();
  if (info->dIn != layer_.dIn || info->dOut != layer_.dOut ||
      std::string(info->dtype) != dtypeName(target_.dtype))
    return Error{lib.path() + " holds another layer"};
  return true;
}

int64_t CudaLayer::libraryDIn() const { return api_->info()->dIn; }
int64_t CudaLayer::libraryDOut() const { return api_->info()->dOut; }
std::string CudaLayer::libraryDType() const { return api_->info()->dtype; }

Result<bool> CudaLayer::addBias(void *y, const void *b, int64_t rows,
                                int64_t n, void *stream) const {
  if (auto ok = checkPointers({{"y", y}, {"bias", b}}); !ok)
    return ok;
  if (auto ok = lib_->useDevice(); !ok)
    return ok;
  return status(api_->addBias(y, b, rows, n, int(target_.dtype), stream),
                "adding the bias");
}

Result<bool> CudaLayer::biasGradient(const void *dy, void *db, int64_t rows,
                                     int64_t n, void *stream) const {
  if (auto ok = checkPointers({{"dy", dy}, {"dbias", db}}); !ok)
    return ok;
  if (auto ok = lib_->useDevice(); !ok)
    return ok;
  return status(api_->biasGradient(dy, db, rows, n, int(target_.dtype), stream),
                "the bias gradient");
}

Result<bool> CudaLayer::synchronize(void *stream) const {
  return lib_->synchronize(stream);
}

size_t CudaLayer::weightCount() const {
  return isGemmLayer(layer_) ? layer_.terms.size() : layer_.experts ? 3 : 2;
}

Result<bool> CudaLayer::checkWeights(const std::vector<const void *> &w,
                                     const char *prefix) const {
  for (size_t k = 0; k < w.size(); ++k) {
    const std::string name = fmt::format("{}W{}", prefix, k + 1);
    if (auto ok = checkPointers({{name.c_str(), w[k]}}); !ok)
      return ok;
  }
  return true;
}

Result<bool> CudaLayer::forward(const void *x, int64_t n,
                                const std::vector<const void *> &w, void *y,
                                void *stream) const {
  if (n < 1)
    return Error{fmt::format("batch = {} must be positive", n)};
  if (w.size() != weightCount())
    return Error{fmt::format("{} weights given; the layer has {}", w.size(),
                             weightCount())};
  if (auto ok = lib_->useDevice(); !ok)
    return ok;
  if (auto ok = checkPointers({{"x", x}, {"y", y}}); !ok)
    return ok;
  if (auto ok = checkWeights(w, ""); !ok)
    return ok;
  if (api_->gemmForward) {
    const size_t bytes = api_->gemmWorkspace(n);
    Scratch ws(*lib_, stream);
    if (auto ok = ws.allocate(bytes); !ok)
      return ok;
    return status(api_->gemmForward(x, w.data(), y, n, ws.get(), bytes, stream),
                  "forward");
  }
  if (!layer_.experts)
    return status(api_->forward(x, w[0], w[1], y, n, stream), "forward");
  const size_t bytes = api_->moeWorkspace(n);
  Scratch ws(*lib_, stream);
  if (auto ok = ws.allocate(bytes); !ok)
    return ok;
  return moeForward(x, n, w, y, ws.get(), bytes, stream);
}

Result<bool> CudaLayer::moeForward(const void *x, int64_t n,
                                   const std::vector<const void *> &w, void *y,
                                   void *workspace, size_t bytes,
                                   void *stream) const {
  MoeStats stats{};
  auto ok = status(api_->moeForward(x, w[2], w[0], w[1], y, n, workspace,
                                    bytes, routingStats_ ? &stats : nullptr,
                                    stream),
                   "BTT-MoE forward");
  if (ok && routingStats_) {
    routing_ = Routing{};
    routing_.tokens = n;
    routing_.experts = stats.experts;
    routing_.topK = layer_.topK;
    routing_.counts.assign(stats.counts, stats.counts + stats.experts);
    routing_.auxLoss = stats.auxLoss;
    routing_.entropy = stats.entropy;
  }
  return ok;
}

Result<bool> CudaLayer::backward(const void *x, const void *dy, int64_t n,
                                 const std::vector<const void *> &w, void *dx,
                                 const std::vector<void *> &dw, void *stream,
                                 double auxWeight) const {
  if (n < 1)
    return Error{fmt::format("batch = {} must be positive", n)};
  if (w.size() != weightCount() || dw.size() != weightCount())
    return Error{fmt::format("{} weights and {} gradients given; the layer "
                             "has {} weights",
                             w.size(), dw.size(), weightCount())};
  if (auto ok = lib_->useDevice(); !ok)
    return ok;
  if (auto ok = checkPointers({{"x", x}, {"dy", dy}, {"dx", dx}}); !ok)
    return ok;
  if (auto ok = checkWeights(w, ""); !ok)
    return ok;
  if (auto ok = checkWeights({dw.begin(), dw.end()}, "d"); !ok)
    return ok;
  if (api_->gemmForward) {
    const size_t bytes = api_->gemmWorkspace(n);
    Scratch ws(*lib_, stream);
    auto ok = ws.allocate(bytes);
    if (ok)
      ok = status(
          api_->gemmBackwardInput(dy, w.data(), dx, n, ws.get(), bytes, stream),
          "backward (input)");
    if (ok)
      ok = status(api_->gemmBackwardWeights(x, dy, dw.data(), n, ws.get(),
                                            bytes, stream),
                  "backward (weights)");
    return ok;
  }
  if (!layer_.experts) {
    auto ok = status(api_->backwardInput(dy, w[0], w[1], dx, n, stream),
                     "backward (input)");
    if (!ok)
      return ok;
    const size_t bytes = api_->weightsWorkspace(n);
    Scratch ws(*lib_, stream);
    if (ok = ws.allocate(bytes); !ok)
      return ok;
    return status(api_->backwardWeights(x, dy, w[0], w[1], dw[0], dw[1], n,
                                        ws.get(), bytes, stream),
                  "backward (weights)");
  }
  // The routing and expert outputs backward needs come from a forward pass
  // into scratch y.
  const size_t bytes = api_->moeWorkspace(n);
  Scratch ws(*lib_, stream), y(*lib_, stream);
  auto ok = ws.allocate(bytes);
  if (ok)
    ok = y.allocate(size_t(n) * size_t(layer_.dOut) *
                    size_t(dtypeBytes(target_.dtype)));
  if (ok)
    ok = moeForward(x, n, w, y.get(), ws.get(), bytes, stream);
  if (ok)
    ok = status(api_->moeBackward(x, w[2], w[0], w[1], dy, float(auxWeight), dx,
                                  dw[2], dw[0], dw[1], n, ws.get(), bytes,
                                  stream),
                "BTT-MoE backward");
  return ok;
}

} // namespace einstruct
