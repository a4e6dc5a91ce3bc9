#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/CudaDevice.h"
#include "compiler/cuda/GemmPlan.h"
#include "compiler/cuda/LayerSources.h"
#include "compiler/passes/CudaPipeline.h"

#include <dlfcn.h>
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
  const char *(*statusString)(int);
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
  // runtime_glue.cu.
  int (*useDevice)(int);
  int (*pointer)(const void *, int *, int *);
  int (*alloc)(void **, size_t, Stream);
  int (*release)(void *, Stream);
  int (*synchronize)(Stream);
  int (*addBias)(void *, const void *, int64_t, int64_t, int, Stream);
  int (*biasGradient)(const void *, void *, int64_t, int64_t, int, Stream);
};

namespace {

template <class F>
bool bindSymbol(void *handle, F &slot, const std::string &symbol) {
  slot = reinterpret_cast<F>(dlsym(handle, symbol.c_str()));
  return slot != nullptr;
}

// Scratch device memory freed in stream order when it goes out of scope.
struct Scratch {
  int (*release)(void *, Stream);
  Stream stream = nullptr;
  void *ptr = nullptr;
  ~Scratch() {
    if (ptr)
      release(ptr, stream);
  }
};

} // namespace

CudaLayer::~CudaLayer() {
  if (handle_)
    dlclose(handle_);
}

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
  l->device_ = device;
  // The label (where the spec came from) is left out of the source, so the
  // same layer from a file, flags or the C ABI is one cache entry.
  plan.layer().label.clear();
  auto src = layerSources(plan, kName);
  if (!src)
    return Error{src.error()};
  const CudaTarget &target = l->target_;
  // A cached entry that does not open (torn by a crash, another toolkit's
  // leftovers) is removed and built again, once.
  for (int attempt = 0;; ++attempt) {
    auto lib = buildCudaLibrary(src->sources, kName, target.arch, src->cublas);
    if (!lib)
      return Error{lib.error()};
    auto opened = l->open(*lib);
    if (lib->temporary)
      forgetCudaLibrary(*lib); // the mapping outlives the file
    if (opened)
      return l;
    if (!lib->fromCache || attempt > 0)
      return Error{opened.error()};
    forgetCudaLibrary(*lib);
  }
}

Result<bool> CudaLayer::open(const BuiltLibrary &lib) {
  if (handle_)
    dlclose(handle_);
  handle_ = dlopen(lib.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char *why = dlerror();
    return Error{"cannot load " + lib.path + ": " + (why ? why : "dlopen failed")};
  }
  api_ = std::make_unique<Api>();
  Api &a = *api_;
  const std::string n = kName;
  bool ok = bindSymbol(handle_, a.info, n + "_info") &&
            bindSymbol(handle_, a.statusString, n + "_status_string") &&
            bindSymbol(handle_, a.useDevice, "einstruct_glue_use_device") &&
            bindSymbol(handle_, a.pointer, "einstruct_glue_pointer") &&
            bindSymbol(handle_, a.alloc, "einstruct_glue_alloc") &&
            bindSymbol(handle_, a.release, "einstruct_glue_free") &&
            bindSymbol(handle_, a.synchronize, "einstruct_glue_synchronize") &&
            bindSymbol(handle_, a.addBias, "einstruct_glue_add_bias") &&
            bindSymbol(handle_, a.biasGradient, "einstruct_glue_bias_gradient");
  if (isGemmLayer(layer_))
    ok = ok && bindSymbol(handle_, a.gemmWorkspace, n + "_workspace") &&
         bindSymbol(handle_, a.gemmForward, n + "_forward") &&
         bindSymbol(handle_, a.gemmBackwardInput, n + "_backward_input") &&
         bindSymbol(handle_, a.gemmBackwardWeights, n + "_backward_weights");
  else if (layer_.experts)
    ok = ok && bindSymbol(handle_, a.moeWorkspace, n + "_moe_workspace") &&
         bindSymbol(handle_, a.moeForward, n + "_moe_forward") &&
         bindSymbol(handle_, a.moeBackward, n + "_moe_backward");
  else
    ok = ok && bindSymbol(handle_, a.forward, n + "_forward") &&
         bindSymbol(handle_, a.backwardInput, n + "_backward_input") &&
         bindSymbol(handle_, a.weightsWorkspace,
                    n + "_backward_weights_workspace") &&
         bindSymbol(handle_, a.backwardWeights, n + "_backward_weights");
  if (!ok)
    return Error{lib.path + " lacks einstruct's entry points"};
  const LayerInfo *info = a.info();
  if (info->dIn != layer_.dIn || info->dOut != layer_.dOut ||
      std::string(info->dtype) != dtypeName(target_.dtype))
    return Error{lib.path + " holds another layer"};
  path_ = lib.path;
  fromCache_ = lib.fromCache;
  return true;
}

int64_t CudaLayer::libraryDIn() const { return api_->info()->dIn; }
int64_t CudaLayer::libraryDOut() const { return api_->info()->dOut; }
std::string CudaLayer::libraryDType() const { return api_->info()->dtype; }

std::string CudaLayer::statusText(int status) const {
  return api_->statusString(status);
}

Result<bool> CudaLayer::useDevice() const {
  // The driver's own words for a missing driver or device, asked once (the
  // CUDA runtime would say "driver version is insufficient").
  static const std::string noDriver = [] {
    auto d = queryCudaDevice(0);
    return d ? std::string() : d.error();
  }();
  if (!noDriver.empty())
    return Error{noDriver};
  return status(api_->useDevice(device_), "selecting the device");
}

Result<bool> CudaLayer::addBias(void *y, const void *b, int64_t rows,
                                int64_t n, void *stream) const {
  if (auto ok = checkPointers({{"y", y}, {"bias", b}}); !ok)
    return ok;
  if (auto ok = status(api_->useDevice(device_), "selecting the device"); !ok)
    return ok;
  return status(api_->addBias(y, b, rows, n, int(target_.dtype), stream),
                "adding the bias");
}

Result<bool> CudaLayer::biasGradient(const void *dy, void *db, int64_t rows,
                                     int64_t n, void *stream) const {
  if (auto ok = checkPointers({{"dy", dy}, {"dbias", db}}); !ok)
    return ok;
  if (auto ok = status(api_->useDevice(device_), "selecting the device"); !ok)
    return ok;
  return status(api_->biasGradient(dy, db, rows, n, int(target_.dtype), stream),
                "the bias gradient");
}

Result<bool> CudaLayer::synchronize(void *stream) const {
  return status(api_->synchronize(stream), "waiting for the stream");
}

Result<bool> CudaLayer::status(int rc, const char *what) const {
  if (rc == 0)
    return true;
  return Error{fmt::format("{} on CUDA device {}: {} (status {})", what,
                           device_, statusText(rc), rc)};
}

Result<bool> CudaLayer::checkPointers(
    std::initializer_list<std::pair<const char *, const void *>> ptrs) const {
  for (auto [name, p] : ptrs) {
    if (!p)
      return Error{fmt::format("{} is null", name)};
    int kind = 0, device = -1;
    if (int rc = api_->pointer(p, &kind, &device))
      return status(rc, name);
    if (kind == 0)
      return Error{fmt::format("{} is host memory; a CUDA layer takes device "
                               "pointers (device {})",
                               name, device_)};
    if (device != device_)
      return Error{fmt::format("{} is memory of CUDA device {}; this layer "
                               "runs on device {}",
                               name, device, device_)};
  }
  return true;
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
  if (auto ok = useDevice(); !ok)
    return ok;
  if (auto ok = checkPointers({{"x", x}, {"y", y}}); !ok)
    return ok;
  if (auto ok = checkWeights(w, ""); !ok)
    return ok;
  if (api_->gemmForward) {
    const size_t bytes = api_->gemmWorkspace(n);
    Scratch ws{api_->release, stream};
    if (auto ok = status(api_->alloc(&ws.ptr, bytes, stream), "workspace"); !ok)
      return ok;
    return status(api_->gemmForward(x, w.data(), y, n, ws.ptr, bytes, stream),
                  "forward");
  }
  if (!layer_.experts)
    return status(api_->forward(x, w[0], w[1], y, n, stream), "forward");
  const size_t bytes = api_->moeWorkspace(n);
  Scratch ws{api_->release, stream};
  if (auto ok = status(api_->alloc(&ws.ptr, bytes, stream), "workspace"); !ok)
    return ok;
  return moeForward(x, n, w, y, ws.ptr, bytes, stream);
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
  if (auto ok = useDevice(); !ok)
    return ok;
  if (auto ok = checkPointers({{"x", x}, {"dy", dy}, {"dx", dx}}); !ok)
    return ok;
  if (auto ok = checkWeights(w, ""); !ok)
    return ok;
  if (auto ok = checkWeights({dw.begin(), dw.end()}, "d"); !ok)
    return ok;
  if (api_->gemmForward) {
    const size_t bytes = api_->gemmWorkspace(n);
    Scratch ws{api_->release, stream};
    auto ok = status(api_->alloc(&ws.ptr, bytes, stream), "workspace");
    if (ok)
      ok = status(api_->gemmBackwardInput(dy, w.data(), dx, n, ws.ptr, bytes,
                                          stream),
                  "backward (input)");
    if (ok)
      ok = status(api_->gemmBackwardWeights(x, dy, dw.data(), n, ws.ptr,
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
    Scratch ws{api_->release, stream};
    if (ok = status(api_->alloc(&ws.ptr, bytes, stream), "workspace"); !ok)
      return ok;
    return status(api_->backwardWeights(x, dy, w[0], w[1], dw[0], dw[1], n,
                                        ws.ptr, bytes, stream),
                  "backward (weights)");
  }
  // The routing and expert outputs backward needs come from a forward pass
  // into scratch y.
  const size_t bytes = api_->moeWorkspace(n);
  Scratch ws{api_->release, stream}, y{api_->release, stream};
  auto ok = status(api_->alloc(&ws.ptr, bytes, stream), "workspace");
  if (ok)
    ok = status(api_->alloc(&y.ptr,
                            size_t(n) * size_t(layer_.dOut) *
                                size_t(dtypeBytes(target_.dtype)),
                            stream),
                "workspace");
  if (ok)
    ok = moeForward(x, n, w, y.ptr, ws.ptr, bytes, stream);
  if (ok)
    ok = status(api_->moeBackward(x, w[2], w[0], w[1], dy, float(auxWeight),
                                  dx, dw[2], dw[0], dw[1], n, ws.ptr, bytes,
                                  stream),
                "BTT-MoE backward");
  return ok;
}

} // namespace einstruct
