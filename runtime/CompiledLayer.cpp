#include "CompiledLayer.h"
#include "compiler/cpu/JitLayer.h"
#include "compiler/cpu/MoeLayer.h"
#include "compiler/cuda/CudaLayer.h"

namespace einstruct {
namespace {

const float *floats(const void *p) { return static_cast<const float *>(p); }
float *floats(void *p) { return static_cast<float *>(p); }

class JitCompiled : public CompiledLayer {
public:
  explicit JitCompiled(std::unique_ptr<JitLayer> jit) : jit_(std::move(jit)) {}

  Result<bool> forward(const void *x, int64_t batch, const void *const *w,
                       void *y, void *) override {
    return jit_->forwardInto(floats(x), batch, weights(w), floats(y));
  }
  Result<bool> backward(const void *x, const void *dy, int64_t batch,
                        const void *const *w, void *dx, void *const *dw,
                        void *, double) override {
    std::vector<float *> grads;
    for (size_t k = 0; k < jit_->weightShapes().size(); ++k)
      grads.push_back(floats(dw[k]));
    return jit_->backwardInto(floats(x), floats(dy), batch, weights(w),
                              floats(dx), grads);
  }
  Result<bool> setThreads(int threads) override {
    jit_->setThreads(threads);
    return true;
  }

private:
  std::vector<const float *> weights(const void *const *w) const {
    std::vector<const float *> out;
    for (size_t k = 0; k < jit_->weightShapes().size(); ++k)
      out.push_back(floats(w[k]));
    return out;
  }
  std::unique_ptr<JitLayer> jit_;
};

// Weights W1, W2, then the router.
class MoeCompiled : public CompiledLayer {
public:
  explicit MoeCompiled(std::unique_ptr<MoeLayer> moe) : moe_(std::move(moe)) {}

  Result<bool> forward(const void *x, int64_t batch, const void *const *w,
                       void *y, void *) override {
    auto r = moe_->forwardInto(floats(x), batch, floats(w[2]),
                               {floats(w[0]), floats(w[1])}, floats(y));
    if (!r)
      return Error{r.error()};
    routing_ = std::move(*r);
    return true;
  }
  Result<bool> backward(const void *x, const void *dy, int64_t batch,
                        const void *const *w, void *dx, void *const *dw,
                        void *, double auxWeight) override {
    // Into the caller's buffers: dW1, dW2, then the router's.
    auto r = moe_->backwardInto(
        floats(x), floats(dy), batch, floats(w[2]),
        {floats(w[0]), floats(w[1])}, auxWeight,
        {floats(dx), floats(dw[2]), {floats(dw[0]), floats(dw[1])}});
    if (!r)
      return Error{r.error()};
    routing_ = std::move(*r);
    return true;
  }
  Result<bool> setThreads(int threads) override {
    moe_->setThreads(threads);
    return true;
  }

private:
  std::unique_ptr<MoeLayer> moe_;
};

class CudaCompiled : public CompiledLayer {
public:
  CudaCompiled(std::unique_ptr<CudaLayer> cuda, size_t weights)
      : cuda_(std::move(cuda)), weights_(weights) {}

  Result<bool> forward(const void *x, int64_t batch, const void *const *w,
                       void *y, void *stream) override {
    auto r = cuda_->forward(x, batch, std::vector<const void *>(w, w + weights_),
                            y, stream);
    keepRouting(r);
    return r;
  }
  Result<bool> backward(const void *x, const void *dy, int64_t batch,
                        const void *const *w, void *dx, void *const *dw,
                        void *stream, double auxWeight) override {
    auto r = cuda_->backward(x, dy, batch,
                             std::vector<const void *>(w, w + weights_), dx,
                             std::vector<void *>(dw, dw + weights_), stream,
                             auxWeight);
    keepRouting(r);
    return r;
  }
  Result<bool> addBias(void *y, const void *b, int64_t rows, int64_t n,
                       void *stream) override {
    return cuda_->addBias(y, b, rows, n, stream);
  }
  Result<bool> biasGradient(const void *dy, void *db, int64_t rows, int64_t n,
                            void *stream) override {
    return cuda_->biasGradient(dy, db, rows, n, stream);
  }
  Result<bool> synchronize() override { return cuda_->synchronize(nullptr); }
  int device() const override { return cuda_->device(); }
  CudaDType dtype() const override { return cuda_->target().dtype; }
  Result<bool> setThreads(int) override {
    return Error{"threads belong to CPU layers; this one runs on CUDA"};
  }
  void setRoutingStats(bool on) override { cuda_->setRoutingStats(on); }
  bool routingStats() const override { return cuda_->routingStats(); }

private:
  void keepRouting(const Result<bool> &r) {
    if (r && cuda_->routingStats())
      routing_ = cuda_->lastRouting();
  }
  std::unique_ptr<CudaLayer> cuda_;
  size_t weights_;
};

} // namespace

Result<bool> CompiledLayer::addBias(void *y, const void *b, int64_t rows,
                                   int64_t n, void *) {
  float *out = floats(y);
  const float *bias = floats(b);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      out[r * n + c] += bias[c];
  return true;
}

Result<bool> CompiledLayer::biasGradient(const void *dy, void *db,
                                         int64_t rows, int64_t n, void *) {
  const float *g = floats(dy);
  std::vector<double> sum(size_t(n), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      sum[size_t(c)] += g[r * n + c];
  std::copy(sum.begin(), sum.end(), floats(db));
  return true;
}

Result<std::unique_ptr<CompiledLayer>> compileForCpu(const Layer &layer) {
  if (layer.experts) {
    auto moe = MoeLayer::compile(layer);
    if (!moe)
      return Error{moe.error()};
    return std::unique_ptr<CompiledLayer>(new MoeCompiled(std::move(*moe)));
  }
  auto jit = JitLayer::compile(layer);
  if (!jit)
    return Error{jit.error()};
  return std::unique_ptr<CompiledLayer>(new JitCompiled(std::move(*jit)));
}

Result<std::unique_ptr<CompiledLayer>>
compileForCuda(const Layer &layer, const CudaTarget &target, int device) {
  auto cuda = CudaLayer::load(layer, target, device);
  if (!cuda)
    return Error{cuda.error()};
  const size_t weights = weightShapes(layer).size() + (layer.experts ? 1 : 0);
  return std::unique_ptr<CompiledLayer>(
      new CudaCompiled(std::move(*cuda), weights));
}

} // namespace einstruct
