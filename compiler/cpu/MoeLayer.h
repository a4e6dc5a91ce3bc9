// A BTT-MoE layer (structures.md §3) on the CPU, computing only what the
// router selects: router GEMM → top-k (search/Routing.h) → tokens grouped by
// expert → per expert, the rank-1 BTT on its tokens only (one MLIR-compiled
// JitLayer, fed each expert's weight slice) → gate-weighted sum. Results are
// deterministic: experts run in index order, tokens in row order.
#pragma once
#include "BufferPool.h"
#include "JitLayer.h"
#include "search/Routing.h"

namespace einstruct {

class MoeLayer {
public:
  // `layer` must be a btt-moe layer: one two-weight term whose rank letter
  // (in both weights, not in x or y) has size layer.experts.
  static Result<std::unique_ptr<MoeLayer>> compile(const Layer &layer);

  const Layer &layer() const { return layer_; }
  int64_t experts() const { return layer_.experts; }
  // Threads each kernel call may use (JitLayer::setThreads).
  void setThreads(int threads) {
    expert_->setThreads(threads);
    router_->setThreads(threads);
  }
  // Whether both kernels came from the JIT's object cache.
  bool fromCache() const {
    return expert_->fromCache() && router_->fromCache();
  }
  // weights: W1, W2 in the layer's layouts (weightShapes), router Wg [d_in][E].
  struct Forward {
    std::vector<float> y; // [batch][d_out]
    Routing routing;
  };
  Result<Forward> forward(const float *x, int64_t batch, const float *router,
                          const std::vector<const float *> &weights) const;
  // The same into the caller's y (batch × d_out floats).
  Result<Routing> forwardInto(const float *x, int64_t batch,
                              const float *router,
                              const std::vector<const float *> &weights,
                              float *y) const;

  // The published way, for comparison: every expert on every token, each
  // output multiplied by its gate (zero where not selected), into y.
  Result<bool> forwardAllExperts(const float *x, int64_t batch,
                                 const float *router,
                                 const std::vector<const float *> &weights,
                                 float *y) const;
  // The first `rows` rows through naive loops over the full rank-E einsum
  // with z's rank e scaled by the token's gate (W1's slice e scaled):
  // independent of the grouped path and the JIT.
  std::vector<float> naiveReference(const float *x, int64_t rows,
                                    const float *router,
                                    const std::vector<const float *> &weights) const;

  struct Gradients {
    std::vector<float> dx, dRouter;     // [batch][d_in], [d_in][E]
    std::vector<std::vector<float>> dw; // dW1, dW2 (zero for idle experts)
    Routing routing;
  };
  // Gradients of <dy, y> + auxWeight·aux.
  Result<Gradients> backward(const float *x, const float *dy, int64_t batch,
                             const float *router,
                             const std::vector<const float *> &weights,
                             double auxWeight) const;

private:
  MoeLayer() = default;
  // Per expert, its rows as token·k + slot, in token order.
  using Groups = std::vector<std::vector<int64_t>>;
  // Router GEMM (JIT'd) and top-k.
  Result<Routing> route(const float *x, int64_t batch,
                        const float *router) const;
  Groups group(const Routing &r) const;
  // Expert e's rank-1 slice of weight k, contiguous, and back.
  PooledFloats slice(const float *w, size_t k, int64_t e) const;
  void unslice(const float *part, std::vector<float> &w, size_t k,
               int64_t e) const;

  Layer layer_;
  std::unique_ptr<JitLayer> expert_; // the rank-1 BTT
  std::unique_ptr<JitLayer> router_; // x[n, d_in] · Wg[d_in, E]
  // Weight k viewed as [outer][experts][inner] around its rank letter.
  std::array<int64_t, 2> outer_{}, inner_{};
};

} // namespace einstruct
