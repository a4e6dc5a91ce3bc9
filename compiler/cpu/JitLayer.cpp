#include "JitLayer.h"
#include "BufferPool.h"
#include "JitModule.h"
#include "WorkerPool.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <thread>

namespace einstruct {

JitLayer::~JitLayer() = default;

bool JitLayer::fromCache() const { return module_->fromCache(); }

Result<std::unique_ptr<JitLayer>> JitLayer::compile(const Layer &layer,
                                                    VectorUnits units) {
  std::unique_ptr<JitLayer> jit(new JitLayer());
  jit->layer_ = layer;
  jit->weightShapes_ = einstruct::weightShapes(layer);
  jit->threads_ = workers::defaultThreads();
  if (auto a = analyze(layer))
    jit->autoMinRows_ = workers::minRowsPerChunk(a->flops);
  jit->minRowsPerThread_ = jit->autoMinRows_;
  // The forward function "layer" and "layer_backward" from autodiff.
  auto module = JitModule::compile(
      [&](mlir::ModuleOp m) { emitLayer(m, layer, "layer"); },
      [](mlir::OpPassManager &pm) { pm.addPass(createAutodiff()); },
      {"layer", "layer_backward"}, units);
  if (!module)
    return Error{module.error()};
  jit->module_ = std::move(*module);
  return jit;
}

Result<bool> JitLayer::checkCall(int64_t batch,
                                 const std::vector<const float *> &weights) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (weights.size() != weightShapes_.size())
    return Error{fmt::format("{} weight tensors given, the layer has {}",
                             weights.size(), weightShapes_.size())};
  return true;
}

Result<bool> JitLayer::invoke(void (*function)(void **), void *results,
                              const float *x, const float *dy, int64_t batch,
                              const std::vector<const float *> &weights) const {
  // C interface: (results*, x*, w*..., [dy*]), each a memref descriptor.
  std::vector<Descriptor> operands;
  operands.emplace_back(x, std::vector<int64_t>{batch, layer_.dIn});
  for (size_t k = 0; k < weights.size(); ++k)
    operands.emplace_back(weights[k], weightShapes_[k]);
  if (dy)
    operands.emplace_back(dy, std::vector<int64_t>{batch, layer_.dOut});
  callPacked(function, results, operands);
  return true;
}


void JitLayer::setThreads(int threads, int64_t minRowsPerThread) {
  threads_ = std::max(1, threads);
  minRowsPerThread_ = minRowsPerThread > 0 ? minRowsPerThread : autoMinRows_;
}

Result<bool> JitLayer::forwardInto(const float *x, int64_t batch,
                                  const std::vector<const float *> &weights,
                                  float *y) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return ok;
  auto cs = workers::chunks(batch, threads_, minRowsPerThread_);
  return workers::runAll(cs.size(), [&](size_t c) {
    return forwardRows(x + cs[c].start * layer_.dIn, cs[c].rows, weights,
                       y + cs[c].start * layer_.dOut);
  });
}

Result<bool> JitLayer::forwardRows(const float *x, int64_t batch,
                                  const std::vector<const float *> &weights,
                                  float *y) const {
  Descriptor result(2);
  auto ok = invoke(module_->entry(0), result.ptr(), x, nullptr, batch,
                   weights);
  if (!ok)
    return ok;
  std::vector<const void *> inputs(weights.begin(), weights.end());
  inputs.push_back(x);
  takeResult(result.words.data(), 2, inputs, y);
  return true;
}

Result<std::vector<float>>
JitLayer::forward(const float *x, int64_t batch,
                  const std::vector<const float *> &weights) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return Error{ok.error()};
  std::vector<float> y(size_t(batch * layer_.dOut));
  auto ok = forwardInto(x, batch, weights, y.data());
  if (!ok)
    return Error{ok.error()};
  return y;
}

Result<bool> JitLayer::backwardInto(const float *x, const float *dy,
                                   int64_t batch,
                                   const std::vector<const float *> &weights,
                                   float *dx,
                                   const std::vector<float *> &dw) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return ok;
  if (dw.size() != weightShapes_.size())
    return Error{fmt::format("{} weight gradients given, the layer has {}",
                             dw.size(), weightShapes_.size())};
  auto cs = workers::chunks(batch, threads_, minRowsPerThread_);
  // Chunk 0 writes the caller's dw, the others their own sums (pooled:
  // fresh megabytes per call would fault their pages in), added after in
  // chunk order.
  std::vector<std::vector<PooledFloats>> partial(cs.size());
  auto ok = workers::runAll(cs.size(), [&](size_t c) {
    std::vector<float *> into = dw;
    if (c > 0)
      for (size_t k = 0; k < dw.size(); ++k)
        into[k] = partial[c]
                      .emplace_back(size_t(elementCount(weightShapes_[k])))
                      .data();
    return backwardRows(x + cs[c].start * layer_.dIn,
                        dy + cs[c].start * layer_.dOut, cs[c].rows, weights,
                        dx + cs[c].start * layer_.dIn, into);
  });
  if (!ok)
    return ok;
  for (size_t c = 1; c < cs.size(); ++c)
    for (size_t k = 0; k < dw.size(); ++k)
      for (size_t i = 0; i < partial[c][k].size(); ++i)
        dw[k][i] += partial[c][k][i];
  return true;
}

Result<bool> JitLayer::backwardRows(const float *x, const float *dy,
                                   int64_t batch,
                                   const std::vector<const float *> &weights,
                                   float *dx,
                                   const std::vector<float *> &dw) const {
  // Results come back as one struct of descriptors: dx, then each dw.
  size_t words = descriptorWords(2);
  for (auto &s : weightShapes_)
    words += descriptorWords(s.size());
  std::vector<int64_t> results(words, 0);
  auto ok = invoke(module_->entry(1), results.data(), x, dy, batch,
                   weights);
  if (!ok)
    return ok;
  std::vector<const void *> inputs(weights.begin(), weights.end());
  inputs.push_back(x);
  inputs.push_back(dy);
  const int64_t *d = results.data();
  takeResult(d, 2, inputs, dx);
  d += descriptorWords(2);
  for (size_t k = 0; k < weightShapes_.size(); ++k) {
    takeResult(d, weightShapes_[k].size(), inputs, dw[k]);
    d += descriptorWords(weightShapes_[k].size());
  }
  return true;
}

Result<JitLayer::Gradients>
JitLayer::backward(const float *x, const float *dy, int64_t batch,
                   const std::vector<const float *> &weights) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return Error{ok.error()};
  Gradients g;
  g.dx.resize(size_t(batch * layer_.dIn));
  std::vector<float *> dw;
  for (auto &s : weightShapes_)
    dw.push_back(g.dw.emplace_back(size_t(elementCount(s))).data());
  auto ok = backwardInto(x, dy, batch, weights, g.dx.data(), dw);
  if (!ok)
    return Error{ok.error()};
  return g;
}

} // namespace einstruct
