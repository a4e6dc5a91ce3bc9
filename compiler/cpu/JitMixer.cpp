#include "JitMixer.h"
#include "BufferPool.h"
#include "JitModule.h"
#include "WorkerPool.h"
#include "compiler/passes/Passes.h"
#include "search/Mixer.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <algorithm>
#include <fmt/format.h>

namespace einstruct {

JitMixer::~JitMixer() = default;

int64_t JitMixer::Saved::bytes() const {
  int64_t total = 0;
  for (const auto &residuals : sequences)
    for (const Descriptor &d : residuals) {
      const size_t rank = (d.words.size() - 3) / 2; // {3 words, sizes, strides}
      total += 4 * elementCount({d.words.begin() + 3,
                                 d.words.begin() + 3 + int64_t(rank)});
    }
  return total;
}

JitMixer::Saved::~Saved() {
  for (const auto &owned : blocks)
    for (void *block : owned)
      bufferpool::release(block);
}

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
  // The whole mixers' backward takes the forward's residuals: the pair
  // mixer_saving / mixer_backward_saved, derived while emitting so that
  // the residuals' ranks can be read off mixer_saving.
  const bool saving = backward && whole();
  std::vector<std::string> entries = {"mixer"};
  if (saving)
    entries = {"mixer_saving", "mixer_backward_saved"};
  else if (backward)
    entries = {"mixer_backward"};
  return JitModule::compile(
      [&](mlir::ModuleOp m) {
        emitMixer(m, plan_, "mixer");
        if (!saving)
          return;
        mlir::PassManager pm(m.getContext());
        AutodiffOptions options;
        options.saveResiduals = true;
        pm.addPass(createAutodiff(options));
        // On failure the entries are missing and the compile says so.
        if (mlir::failed(pm.run(m)))
          return;
        residualRanks_.clear();
        auto f = m.lookupSymbol<mlir::func::FuncOp>("mixer_saving");
        for (mlir::Type t : f.getResultTypes().drop_front())
          residualRanks_.push_back(
              size_t(mlir::cast<mlir::RankedTensorType>(t).getRank()));
      },
      [&](mlir::OpPassManager &pm) {
        if (backward && !saving)
          pm.addPass(createAutodiff());
      },
      entries, units_);
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
// call after call. With dy null the forward into y (through mixer_saving,
// its residuals kept, when `save` is given), else every operand's gradient
// into grads, from the residuals `saved` holds or mixer_saving's run
// first: a shared operand's (a block's parameters) summed over the
// sequences, each group of sequences into its own sum first, the groups'
// sums added in order.
Result<bool> JitMixer::wholeRun(const std::vector<const float *> &in,
                                const float *dy, int64_t batch, float *y,
                                const std::vector<float *> &grads, Saved *save,
                                const Saved *saved) const {
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
  // mixer_saving on `operands`: y into yOut (none when null), the
  // residuals' descriptors into `residuals` and the pool blocks they own
  // (not `inputs`) into `blocks`.
  auto runSaving = [&](std::vector<Descriptor> &operands,
                       const std::vector<const void *> &inputs, float *yOut,
                       std::vector<Descriptor> &residuals,
                       std::vector<void *> &blocks) {
    size_t words = descriptorWords(yShape.size());
    for (size_t r : residualRanks_)
      words += descriptorWords(r);
    std::vector<int64_t> results(words);
    callPacked(backward_->entry(0), results.data(), operands);
    std::vector<const void *> kept = inputs; // not freed with y
    const int64_t *d = results.data() + descriptorWords(yShape.size());
    for (size_t r : residualRanks_) {
      Descriptor residual(r);
      std::copy(d, d + descriptorWords(r), residual.words.begin());
      auto *block = reinterpret_cast<void *>(d[0]);
      if (std::find(kept.begin(), kept.end(), block) == kept.end()) {
        blocks.push_back(block);
        kept.push_back(block);
      }
      residuals.push_back(std::move(residual));
      d += descriptorWords(r);
    }
    takeResult(results.data(), yShape.size(), kept, yOut);
  };
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
      if (!dy && save) {
        runSaving(operands, inputs, y + b * ySize, save->sequences[size_t(b)],
                  save->blocks[size_t(b)]);
        continue;
      }
      if (!dy) {
        callInto(forward_->entry(0), operands, inputs, {yShape},
                 {y + b * ySize});
        continue;
      }
      std::vector<Descriptor> computed;
      std::vector<void *> blocks;
      if (!saved)
        runSaving(operands, inputs, nullptr, computed, blocks);
      const auto &residuals = saved ? saved->sequences[size_t(b)] : computed;
      operands.insert(operands.end(), residuals.begin(), residuals.end());
      // A gradient returned in a residual's block is not freed with it.
      for (const Descriptor &r : residuals)
        inputs.push_back(reinterpret_cast<const void *>(r.words[0]));
      operands.emplace_back(dy + b * ySize, yShape);
      inputs.push_back(dy + b * ySize);
      std::vector<float *> outs;
      for (size_t k = 0; k < grads.size(); ++k)
        outs.push_back(strides[k] ? grads[k] + b * strides[k]
                                  : scratch[k].data());
      callInto(backward_->entry(1), operands, inputs, shapes, outs);
      for (void *block : blocks)
        bufferpool::release(block);
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
  if (whole())
    return wholeRun(in, nullptr, batch, y, {}, nullptr, nullptr);
  return linearRun(in, nullptr, batch, y, {});
}

Result<std::unique_ptr<JitMixer::Saved>>
JitMixer::forwardSaving(const std::vector<const float *> &in, int64_t batch,
                        float *y) const {
  std::unique_ptr<Saved> saved(new Saved());
  if (!whole()) {
    if (auto ok = forward(in, batch, y); !ok)
      return Error{ok.error()};
    return saved;
  }
  if (auto ok = check(in, batch); !ok)
    return Error{ok.error()};
  if (auto ok = compileBackward(); !ok)
    return Error{ok.error()};
  saved->sequences.resize(size_t(batch));
  saved->blocks.resize(size_t(batch));
  if (auto ok = wholeRun(in, nullptr, batch, y, {}, saved.get(), nullptr); !ok)
    return Error{ok.error()};
  return saved;
}

Result<bool> JitMixer::backward(const std::vector<const float *> &in,
                                const float *dy, int64_t batch,
                                const std::vector<float *> &grads,
                                const Saved *saved) const {
  if (auto ok = check(in, batch); !ok)
    return ok;
  if (grads.size() != operands_.size())
    return Error{fmt::format("{} gradients given, {} has {} operands",
                             grads.size(), plan_.family, operands_.size())};
  if (whole() && saved && saved->sequences.size() != size_t(batch))
    return Error{fmt::format("the saved forward ran on {} sequences, the "
                             "backward on {}",
                             saved->sequences.size(), batch)};
  if (auto ok = compileBackward(); !ok)
    return ok;
  if (whole())
    return wholeRun(in, dy, batch, nullptr, grads, nullptr, saved);
  return linearRun(in, dy, batch, nullptr, grads);
}

} // namespace einstruct
