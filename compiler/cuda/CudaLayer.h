// A layer run by its generated CUDA kernels: the emitted library built by
// nvcc, cached on disk and opened (CudaLibrary), called through its C ABI.
// Nothing here links against CUDA; on a machine without a driver or device,
// load() still builds and opens the library.
#pragma once
#include "compiler/cuda/CudaLibrary.h"
#include "compiler/cuda/LayerSources.h"
#include "search/Routing.h"

#include <memory>

namespace einstruct {

class CudaLayer {
public:
  ~CudaLayer();
  CudaLayer(const CudaLayer &) = delete;
  CudaLayer &operator=(const CudaLayer &) = delete;

  // Built (or found in the cache) for `target` and opened; `device` is the
  // CUDA device calls run on, whose arch `target` must be (targetFor() in
  // CudaDevice.h). Needs no driver or device: ahead-of-time builds and
  // tests load without one.
  static Result<std::unique_ptr<CudaLayer>>
  load(const Layer &layer, const CudaTarget &target, int device = 0);
  // The same from a plan made already (planLayerThroughIr), for its target.
  static Result<std::unique_ptr<CudaLayer>> load(LayerPlan plan,
                                                 int device = 0);

  const Layer &layer() const { return layer_; }
  const CudaTarget &target() const { return target_; }
  int device() const { return lib_->device(); }
  const std::string &libraryPath() const { return lib_->path(); }
  bool fromCache() const { return lib_->fromCache(); }
  // d_in, d_out and dtype as the loaded library reports them.
  int64_t libraryDIn() const;
  int64_t libraryDOut() const;
  std::string libraryDType() const;

  // Arrays are device memory of `device` in the layer's dtype, laid out as
  // the emitted header says; weights are W1, W2 (and the router Wg last for
  // BTT-MoE), or one per term for layers of one-weight terms (dense,
  // block-diagonal, DYAD: cuBLAS, GemmPlan.h). `stream` is a cudaStream_t (null: the legacy default stream).
  // Asynchronous unless routing statistics are on.
  Result<bool> forward(const void *x, int64_t n,
                       const std::vector<const void *> &weights, void *y,
                       void *stream) const;
  // Gradients of <dy, y> (+ auxWeight · aux loss for BTT-MoE), overwritten.
  // BTT-MoE recomputes its forward pass first (the routing it needs).
  Result<bool> backward(const void *x, const void *dy, int64_t n,
                        const std::vector<const void *> &weights, void *dx,
                        const std::vector<void *> &dweights, void *stream,
                        double auxWeight = 0.01) const;

  // BTT-MoE: gather tokens per expert, aux loss and entropy on each call
  // (which then waits for the stream). Off by default.
  void setRoutingStats(bool on) { routingStats_ = on; }
  bool routingStats() const { return routingStats_; }
  // Of the last call with statistics on (counts empty before one).
  const Routing &lastRouting() const { return routing_; }

  // A bias on `stream`: y [rows][n] += b; db = the column sums of dy (float
  // accumulation, stored in the layer's dtype).
  Result<bool> addBias(void *y, const void *b, int64_t rows, int64_t n,
                       void *stream) const;
  Result<bool> biasGradient(const void *dy, void *db, int64_t rows, int64_t n,
                            void *stream) const;

  // Waits for the work queued on `stream`.
  Result<bool> synchronize(void *stream) const;

  // The library's text for a status it returned.
  std::string statusText(int status) const { return lib_->statusText(status); }

private:
  CudaLayer() = default;
  struct Api;
  // Binds the layer's entry points; checks the library holds this layer.
  Result<bool> accept(CudaLibrary &lib);
  Result<bool> checkPointers(
      std::initializer_list<std::pair<const char *, const void *>> ptrs) const {
    return lib_->checkPointers(ptrs, "layer");
  }
  Result<bool> status(int rc, const char *what) const {
    return lib_->status(rc, what);
  }
  // W1, W2 (Wg) of a two-factor layer, one per term of a cuBLAS one.
  size_t weightCount() const;
  // Each of `w` is device memory, named `prefix`W1, W2, ... in errors.
  Result<bool> checkWeights(const std::vector<const void *> &w,
                            const char *prefix) const;
  Result<bool> moeForward(const void *x, int64_t n,
                          const std::vector<const void *> &w, void *y,
                          void *workspace, size_t bytes, void *stream) const;

  Layer layer_;
  CudaTarget target_;
  std::unique_ptr<CudaLibrary> lib_;
  std::unique_ptr<Api> api_;
  bool routingStats_ = false;
  mutable Routing routing_;
};

} // namespace einstruct
