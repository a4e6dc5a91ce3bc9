#include "JitMixer.h"
#include "JitModule.h"
#include "WorkerPool.h"
#include "compiler/passes/Passes.h"
#include "search/Mixer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <algorithm>
#include <fmt/format.h>

namespace einstruct {

JitMixer::~JitMixer() = default;

Result<std::unique_ptr<JitMixer>> JitMixer::compile(const NamedSpec &spec,
                                                    int64_t length,
                                                    int64_t channels,
                                                    VectorUnits units) {
  auto plan = planMixer(spec, length, channels);
  if (!plan)
    return Error{plan.error()};
  std::unique_ptr<JitMixer> jit(new JitMixer());
  jit->plan_ = std::move(*plan);
  jit->threads_ = workers::defaultThreads();
  const MixerPlan &p = jit->plan_;
  jit->operands_ = mixerOperands(p);
  jit->constants_ = mixerConstants(p);
  jit->units_ = units;
  auto module = jit->compileModule(false);
  if (!module)
    return Error{module.error()};
  jit->forward_ = std::move(*module);
  return jit;
}

Result<std::unique_ptr<JitModule>>
JitMixer::compileModule(bool backward) const {
  return JitModule::compile(
      [&](mlir::ModuleOp m) { emitMixer(m, plan_, "mixer"); },
      [&](mlir::OpPassManager &pm) {
        if (backward)
          pm.addPass(createAutodiff());
      },
      {backward ? "mixer_backward" : "mixer"}, units_);
}

Result<bool> JitMixer::compileBackward() const {
  std::call_once(backwardOnce_, [&] {
    auto module = compileModule(true);
    if (module)
      backward_ = std::move(*module);
    else
      backwardError_ = "the backward: " + module.error();
  });
  if (!backward_)
    return Error{backwardError_};
  return true;
}

void JitMixer::setThreads(int threads) { threads_ = std::max(1, threads); }

Result<bool> JitMixer::check(const std::vector<const float *> &in,
                             int64_t batch) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (in.size() != operands_.size())
    return Error{fmt::format("{} operands given, {} takes {}", in.size(),
                             plan_.family, operands_.size())};
  return true;
}

// ssd, hydra and the blocks, whole in the IR (x ⊙ dt, the chunk's
// padding, Hydra's flips, shifts and d ⊙ x; the blocks' projections,
// convolutions, filters and norm), one sequence per compiled call: its
// intermediates (the masked C·Bᵀ per head and chunk, 12.6 MB per pass at
// L = 4096, H = 12, Q = 64) stay few and are reused from the buffer pool
// call after call. With dy null the forward into y, else every operand's
// gradient into grads: a shared operand's (a block's parameters) summed
// over the sequences, each group of sequences into its own sum first, the
// groups' sums added in order.
Result<bool> JitMixer::wholeRun(const std::vector<const float *> &in,
                                const float *dy, int64_t batch, float *y,
                                const std::vector<float *> &grads) const {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> sizes, strides;
  for (const Operand &op : operands_) {
    shapes.push_back({});
    if (op.perSequence)
      shapes.back().push_back(1);
    shapes.back().insert(shapes.back().end(), op.shape.begin(), op.shape.end());
    sizes.push_back(elementCount(op.shape));
    strides.push_back(op.perSequence ? sizes.back() : 0);
  }
  // y and dy are shaped like x ([1, L, C] for the block's u).
  const std::vector<int64_t> &yShape = shapes[0];
  const int64_t ySize = sizes[0];
  auto cs = workers::chunks(batch, threads_, 1);
  // Per group of sequences: each shared operand's gradient sum and the
  // buffer one call writes it into.
  std::vector<std::vector<std::vector<float>>> sums(cs.size());
  auto ran = workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    std::vector<std::vector<float>> scratch(in.size());
    if (dy)
      for (size_t k = 0; k < in.size(); ++k)
        if (!strides[k]) {
          sums[c].emplace_back(size_t(sizes[k]), 0.f);
          scratch[k].resize(size_t(sizes[k]));
        }
    for (int64_t b = cs[c].start; b < cs[c].start + cs[c].rows; ++b) {
      std::vector<Descriptor> operands;
      std::vector<const void *> inputs;
      for (size_t k = 0; k < in.size(); ++k) {
        operands.emplace_back(in[k] + b * strides[k], shapes[k]);
        inputs.push_back(in[k] + b * strides[k]);
      }
      for (const M2ConvConstant &k : constants_) { // m2-block's
        operands.emplace_back(k.values.data(), k.shape);
        inputs.push_back(k.values.data());
      }
      if (!dy) {
        callInto(forward_->entry(0), operands, inputs, {yShape},
                 {y + b * ySize});
        continue;
      }
      operands.emplace_back(dy + b * ySize, yShape);
      inputs.push_back(dy + b * ySize);
      std::vector<float *> outs;
      for (size_t k = 0; k < grads.size(); ++k)
        outs.push_back(strides[k] ? grads[k] + b * strides[k]
                                  : scratch[k].data());
      callInto(backward_->entry(0), operands, inputs, shapes, outs);
      for (size_t k = 0, s = 0; k < grads.size(); ++k)
        if (!strides[k]) {
          std::vector<float> &sum = sums[c][s++];
          for (size_t i = 0; i < sum.size(); ++i)
            sum[i] += scratch[k][i];
        }
    }
    return true;
  });
  if (!ran || !dy)
    return ran;
  for (size_t k = 0, s = 0; k < grads.size(); ++k) {
    if (strides[k])
      continue;
    std::fill(grads[k], grads[k] + sizes[k], 0.f);
    for (auto &group : sums)
      for (size_t i = 0; i < group[s].size(); ++i)
        grads[k][i] += group[s][i];
    ++s;
  }
  return true;
}

Result<bool> JitMixer::forward(const std::vector<const float *> &in,
                               int64_t batch, float *y) const {
  if (auto ok = check(in, batch); !ok)
    return ok;
  if (plan_.chunkedSsd() || plan_.isBlock())
    return wholeRun(in, nullptr, batch, y, {});
  return linearRun(in, nullptr, batch, y, {});
}

Result<bool> JitMixer::backward(const std::vector<const float *> &in,
                                const float *dy, int64_t batch,
                                const std::vector<float *> &grads) const {
  if (auto ok = check(in, batch); !ok)
    return ok;
  if (grads.size() != operands_.size())
    return Error{fmt::format("{} gradients given, {} has {} operands",
                             grads.size(), plan_.family, operands_.size())};
  if (auto ok = compileBackward(); !ok)
    return ok;
  if (plan_.chunkedSsd() || plan_.isBlock())
    return wholeRun(in, dy, batch, nullptr, grads);
  return linearRun(in, dy, batch, nullptr, grads);
}

} // namespace einstruct
