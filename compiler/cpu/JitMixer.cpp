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
  if (p.family == "m2-conv")
    jit->constants_ = m2ConvConstants(p.conv);
  auto module = JitModule::compile(
      [&](mlir::ModuleOp m) { emitMixer(m, p, "mixer"); },
      [](mlir::OpPassManager &pm) { pm.addPass(createAutodiff()); },
      {"mixer", "mixer_backward"}, units);
  if (!module)
    return Error{module.error()};
  jit->module_ = std::move(*module);
  return jit;
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

// ssd and hydra, whole in the IR (x ⊙ dt, the chunk's padding, Hydra's
// flips, shifts and d ⊙ x), one sequence per compiled call: its
// intermediates (the masked C·Bᵀ per head and chunk, 12.6 MB per pass at
// L = 4096, H = 12, Q = 64) stay few and are reused from the buffer pool
// call after call. With dy null the forward into y, else every operand's
// gradient into grads.
Result<bool> JitMixer::ssdRun(const std::vector<const float *> &in,
                              const float *dy, int64_t batch, float *y,
                              const std::vector<float *> &grads) const {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> sizes;
  for (const Operand &op : operands_) {
    shapes.push_back({1});
    shapes.back().insert(shapes.back().end(), op.shape.begin(), op.shape.end());
    sizes.push_back(elementCount(op.shape));
  }
  // y and dy are shaped like x.
  const std::vector<int64_t> &yShape = shapes[0];
  const int64_t ySize = sizes[0];
  auto cs = workers::chunks(batch, threads_, 1);
  return workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    for (int64_t b = cs[c].start; b < cs[c].start + cs[c].rows; ++b) {
      std::vector<Descriptor> operands;
      std::vector<const void *> inputs;
      for (size_t k = 0; k < in.size(); ++k) {
        operands.emplace_back(in[k] + b * sizes[k], shapes[k]);
        inputs.push_back(in[k] + b * sizes[k]);
      }
      if (!dy) {
        callInto(module_->entry(0), operands, inputs, {yShape},
                 {y + b * ySize});
        continue;
      }
      operands.emplace_back(dy + b * ySize, yShape);
      inputs.push_back(dy + b * ySize);
      std::vector<float *> outs;
      for (size_t k = 0; k < grads.size(); ++k)
        outs.push_back(grads[k] + b * sizes[k]);
      callInto(module_->entry(1), operands, inputs, shapes, outs);
    }
    return true;
  });
}

Result<bool> JitMixer::forward(const std::vector<const float *> &in,
                               int64_t batch, float *y) const {
  if (auto ok = check(in, batch); !ok)
    return ok;
  if (plan_.chunkedSsd())
    return ssdRun(in, nullptr, batch, y, {});
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
  if (plan_.chunkedSsd())
    return ssdRun(in, dy, batch, nullptr, grads);
  return linearRun(in, dy, batch, nullptr, grads);
}

} // namespace einstruct
