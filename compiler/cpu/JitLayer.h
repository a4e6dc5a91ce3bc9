// A layer compiled for the CPU through the MLIR pipeline and run by MLIR's
// ExecutionEngine JIT.
#pragma once
#include "VectorUnits.h"
#include "search/Layer.h"

#include <memory>

namespace einstruct {

class JitModule;

class JitLayer {
public:
  ~JitLayer();
  // Micro-kernels shaped for `units` (any shape runs anywhere LLVM can
  // legalise it; tests force both).
  static Result<std::unique_ptr<JitLayer>>
  compile(const Layer &layer, VectorUnits units = hostVectorUnits());

  // Every weight of every term, in order, with its shape (structures.md
  // layouts, size-1 indices dropped).
  const std::vector<std::vector<int64_t>> &weightShapes() const {
    return weightShapes_;
  }
  const Layer &layer() const { return layer_; }
  // Whether compile() loaded the object code from the on-disk cache
  // (objectcache::directory()) instead of generating it.
  bool fromCache() const;

  // Threads a call may use: the batch is split into up to that many row
  // chunks of at least `minRowsPerThread` rows (0: 24 rows and ~32M
  // multiply-adds), run at once. Rows are independent, so y and dx do not
  // depend on it; the weight gradients add the chunks' sums in chunk order
  // (deterministic for a given split). Default: EINSTRUCT_NUM_THREADS, else
  // the hardware's threads.
  void setThreads(int threads, int64_t minRowsPerThread = 0);
  int threads() const { return threads_; }

  // y[batch, d_out] = layer(x[batch, d_in]); row-major float32.
  Result<std::vector<float>> forward(const float *x, int64_t batch,
                                     const std::vector<const float *> &weights) const;
  // The same into the caller's y (batch × d_out floats).
  Result<bool> forwardInto(const float *x, int64_t batch,
                           const std::vector<const float *> &weights,
                           float *y) const;

  struct Gradients {
    std::vector<float> dx;              // [batch, d_in]
    std::vector<std::vector<float>> dw; // one per weight, weightShapes()
  };
  // The gradients of <dy, layer(x)> for dy[batch, d_out] (from
  // --einstruct-autodiff, compiled alongside the forward pass).
  Result<Gradients> backward(const float *x, const float *dy, int64_t batch,
                             const std::vector<const float *> &weights) const;
  // The same into the caller's dx (batch × d_in) and dw (weightShapes()).
  Result<bool> backwardInto(const float *x, const float *dy, int64_t batch,
                            const std::vector<const float *> &weights,
                            float *dx, const std::vector<float *> &dw) const;

private:
  JitLayer() = default;
  // One call of the compiled functions on rows [0, batch).
  Result<bool> forwardRows(const float *x, int64_t batch,
                           const std::vector<const float *> &weights,
                           float *y) const;
  Result<bool> backwardRows(const float *x, const float *dy, int64_t batch,
                            const std::vector<const float *> &weights,
                            float *dx, const std::vector<float *> &dw) const;
  // A batch of at least one row and one pointer per weight: what every
  // entry point checks before splitting the batch or allocating.
  Result<bool> checkCall(int64_t batch,
                         const std::vector<const float *> &weights) const;
  // Calls a compiled function through its C interface (on checked input).
  Result<bool> invoke(void (*function)(void **), void *results, const float *x,
                      const float *dy, int64_t batch,
                      const std::vector<const float *> &weights) const;
  Layer layer_;
  std::vector<std::vector<int64_t>> weightShapes_;
  std::unique_ptr<JitModule> module_; // entries: forward, backward
  int threads_ = 1;
  int64_t minRowsPerThread_ = 24, autoMinRows_ = 24;
};

} // namespace einstruct
