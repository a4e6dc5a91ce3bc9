// A BTT-MoE layer (structures.md §3) on the CPU, computing only what the
// router selects: router GEMM → top-k (search/Routing.h) → tokens grouped by
// expert → per expert, the rank-1 BTT on its tokens only → gate-weighted
// sum. The forward is the layer's einstruct.moe_layer lowered by
// --einstruct-lower-moe into one compiled function; the backward is its
// gradient from --einstruct-autodiff (einstruct.moe_layer_grad), lowered
// the same way. Results are deterministic for a thread count: experts run in
// index order, tokens in row order, chunks' sums in chunk order.
#pragma once
#include "BufferPool.h"
#include "JitLayer.h"
#include "JitModule.h"
#include "search/Routing.h"

namespace einstruct {

class MoeLayer {
public:
  // `layer` must be a btt-moe layer: one two-weight term whose rank letter
  // (in both weights, not in x or y) has size layer.experts.
  static Result<std::unique_ptr<MoeLayer>> compile(const Layer &layer);

  const Layer &layer() const { return layer_; }
  int64_t experts() const { return layer_.experts; }
  // Threads a call may use: the forward splits the tokens into chunks of
  // at least `minRowsPerThread` (0: ~32M multiply-adds; a token's output
  // does not depend on the others), the backward's kernel calls split
  // their rows (JitLayer::setThreads).
  void setThreads(int threads, int64_t minRowsPerThread = 0) {
    threads_ = std::max(1, threads);
    minRowsPerThread_ =
        minRowsPerThread > 0 ? minRowsPerThread : autoMinRows_;
    expert_->setThreads(threads);
    router_->setThreads(threads);
  }
  // Whether every kernel came from the JIT's object cache.
  bool fromCache() const {
    return expert_->fromCache() && router_->fromCache() &&
           lowered_->fromCache() && loweredBackward_->fromCache();
  }
  // weights: W1, W2 in the layer's layouts (weightShapes), router Wg [d_in][E].
  struct Forward {
    std::vector<float> y; // [batch][d_out]
    Routing routing;
  };
  Result<Forward> forward(const float *x, int64_t batch, const float *router,
                          const std::vector<const float *> &weights) const;
  // The same into the caller's y (batch × d_out floats): the lowered
  // function on token chunks; the routing returned (counts, entropy, aux
  // loss of the whole batch) is routeTokens on the logits it returns.
  Result<Routing> forwardInto(const float *x, int64_t batch,
                              const float *router,
                              const std::vector<const float *> &weights,
                              float *y) const;

  // One call of the lowered function (routing, grouping, experts and
  // combine in compiled code) on all `batch` tokens, one thread: y and the
  // router logits [batch][E]. Returns the aux loss.
  Result<float> forwardLowered(const float *x, int64_t batch,
                               const float *router,
                               const std::vector<const float *> &weights,
                               float *y, float *logits) const;
  // The same algorithm orchestrated here: the router kernel, routeTokens,
  // then one call of the compiled rank-1 layer per expert on its gathered
  // rows. The same bits as forwardLowered (a check of both).
  Result<Routing> forwardGrouped(const float *x, int64_t batch,
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

  // Where a backward writes, each buffer overwritten: dx [batch][d_in],
  // dRouter [d_in][E], dw: dW1, dW2 (the weights' sizes; zero for idle
  // experts).
  struct GradientBuffers {
    float *dx, *dRouter;
    std::vector<float *> dw;
  };
  // Gradients of <dy, y> + auxWeight·aux into the caller's buffers (what
  // the C ABI and the torch module call: no allocation or copy of the
  // results per call): the lowered gradient function on token chunks
  // across threads, the weight and router gradients summed in chunk order.
  // The aux loss is a statistic of the whole batch, so with several chunks
  // its gradient is added here from the batch's routing; one chunk leaves
  // it to the function. Returns the batch's routing.
  Result<Routing> backwardInto(const float *x, const float *dy, int64_t batch,
                               const float *router,
                               const std::vector<const float *> &weights,
                               double auxWeight,
                               const GradientBuffers &out) const;
  // The same into fresh vectors (the CLI's and the tests' form).
  struct Gradients {
    std::vector<float> dx, dRouter;     // [batch][d_in], [d_in][E]
    std::vector<std::vector<float>> dw; // dW1, dW2 (zero for idle experts)
    Routing routing;
  };
  Result<Gradients> backward(const float *x, const float *dy, int64_t batch,
                             const float *router,
                             const std::vector<const float *> &weights,
                             double auxWeight) const;
  // One call of the lowered gradient function on `batch` tokens, one
  // thread: the gradients of <dy, y> + auxWeight·aux of those tokens, into
  // dx [batch][d_in], dRouter and dw (the weights' sizes).
  Result<bool> backwardLowered(const float *x, const float *dy, int64_t batch,
                               const float *router,
                               const std::vector<const float *> &weights,
                               float auxWeight, float *dx, float *dRouter,
                               const std::vector<float *> &dw) const;
  // The same gradients orchestrated here: the router kernel, routeTokens,
  // per expert the compiled rank-1 layer's forward and backward on its
  // rows, routeBackward (a check of the lowered path, and a bench column),
  // into the caller's buffers or fresh vectors.
  Result<Routing> backwardGroupedInto(const float *x, const float *dy,
                                      int64_t batch, const float *router,
                                      const std::vector<const float *> &weights,
                                      double auxWeight,
                                      const GradientBuffers &out) const;
  Result<Gradients> backwardGrouped(const float *x, const float *dy,
                                    int64_t batch, const float *router,
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
  // What both backward paths start from: the arguments checked, and the
  // batch's routing.
  Result<Routing> backwardRouting(const float *x, int64_t batch,
                                  const float *router,
                                  const std::vector<const float *> &weights,
                                  const GradientBuffers &out) const;
  // Gradients sized for `batch` tokens, zero, and `into` run on them.
  template <class Into>
  Result<Gradients> intoFresh(int64_t batch, Into into) const;
  // dx += dlogits·routerᵀ, dRouter += xᵀ·dlogits (the router kernel's
  // backward).
  Result<bool> routerBackward(const float *x, int64_t batch,
                              const float *router, const float *dlogits,
                              float *dx, float *dRouter) const;
  // The gradient buffers' sizes: the router's, and weight k's (all
  // experts).
  size_t routerSize() const { return size_t(layer_.dIn * layer_.experts); }
  size_t weightSize(size_t k) const {
    return size_t(outer_[k] * layer_.experts * inner_[k]);
  }
  // Expert e's rank-1 slice of weight k, contiguous, and back.
  PooledFloats slice(const float *w, size_t k, int64_t e) const;
  void unslice(const float *part, float *w, size_t k, int64_t e) const;

  Layer layer_;
  std::unique_ptr<JitLayer> expert_; // the rank-1 BTT
  std::unique_ptr<JitLayer> router_; // x[n, d_in] · Wg[d_in, E]
  std::unique_ptr<JitModule> lowered_; // "moe": the whole forward
  std::unique_ptr<JitModule> loweredBackward_; // "moe_train_backward"
  int threads_ = 1;
  int64_t minRowsPerThread_ = 24, autoMinRows_ = 24;
  // Weight k viewed as [outer][experts][inner] around its rank letter.
  std::array<int64_t, 2> outer_{}, inner_{};
};

} // namespace einstruct
