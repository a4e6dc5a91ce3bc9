// A sequence mixer compiled for the CPU (structures.md §7): chunked SSD
// (Mamba-2), Hydra's quasiseparable mixer built from two SSD passes, M2's
// long convolution through Monarch-factored DFTs, and a Monarch matrix
// along the sequence. Their forward and backward come from the dialect
// (EmitMixer, then --einstruct-autodiff) through the CPU pipeline and JIT,
// as layers do, the backward when first needed. Each is whole in the IR (x ⊙
// dt, the chunk's zero padding, Hydra's flips and shifts, m2-conv's DFT grid
// and kernel layout: the functions their CUDA libraries run too); the glue
// around the two linear maps (JitLinearMixer.cpp) only cuts the channels into
// blocks.
#pragma once
#include "JitModule.h"
#include "VectorUnits.h"
#include "compiler/ir/EmitMixer.h"
#include "search/Mixer.h"
#include "search/Result.h"

#include <memory>
#include <mutex>

namespace einstruct {

class JitMixer {
public:
  ~JitMixer();
  // `spec` is ssd(...) or hydra(...) with heads, head_dim and state (the
  // chunk chosen as analyzeMixer does when not given; a length the chunk
  // does not divide is zero-padded, causal, so padding after the end
  // changes nothing before it), m2-conv(...) or monarch-seq(...), on
  // sequences of `length` tokens of `channels` (d_model; 0 for ssd and
  // hydra takes heads · head_dim, which a nonzero value must equal), or
  // hydra-block(...) and m2-block(...), goombalab/hydra's and
  // HazyResearch/m2's whole blocks on d_model channels.
  static Result<std::unique_ptr<JitMixer>>
  compile(const NamedSpec &spec, int64_t length, int64_t channels = 0,
          VectorUnits units = hostVectorUnits());

  // The operands, per sequence (a call takes `batch` sequences, each
  // tensor row-major as [batch, shape...]), as Mamba-2's
  // mamba_chunk_scan_combined takes them (dt after its softplus; a = dt·A
  // given, so that A's gradient is the caller's):
  //   ssd:   x [L, H, P], dt [L, H], a [L, H], B, C [L, N] (one group);
  //   hydra: x [L, H, P], dt and a [L, 2, H], B and C [L, 2, N] (the
  //          forward pass's, then the backward pass's on the flipped
  //          sequence, as the reference's dt and BC halves), d [L, H] (the
  //          skip's scale per token and head, fc_D(x) + D).
  //   m2-conv x [L, C]; shared by the sequences: k [L, C] (the filter,
  //          channels last), for causal=false k_rev [L, C] too, and D [C];
  //   monarch-seq x [L, C]; shared: w1 [k, q, p] and w2 [l, s, r] (fly's
  //          blockdiag_butterfly_multiply weights, blocks × m × m).
  //   hydra-block, m2-block x [L, d] (the block's input u); shared: the
  //          block's parameters, named and shaped as blocks.Hydra's and
  //          blocks.M2's state_dict (mixerOperands), y [L, d].
  // y is [L, H, P] (ssd, hydra) or [L, C]; with SSD(u, a, B, C)_l =
  // Σ_{s ≤ l} (C_l·B_s) exp(Σ_{t=s+1..l} a_t) u_s (ssd_minimal_discrete's
  // X·dt and A·dt):
  //   ssd    y = SSD(x ⊙ dt, a, B, C)
  //   hydra  y = shift(SSD_fwd(x ⊙ dt_fwd)) + flip(shift(SSD_bwd(flip(x ⊙
  //          dt_bwd)))) + d ⊙ x, shift moving each token one later;
  //   m2-conv y_i = Σ_{j ≤ i} k_{i−j} x_j (+ Σ_{j > i} k_rev_{j−i−1} x_j
  //          bidirectional) + D ⊙ x_i per channel: M2's fftconv_ref (its
  //          gates u, v are the block's);
  //   monarch-seq y[:, c] = fly's Monarch(w1, w2) applied to x[:, c].
  using Operand = MixerOperand;
  const std::vector<Operand> &operands() const { return operands_; }
  std::vector<int64_t> outputShape() const { return mixerOutputShape(plan_); }
  const std::string &family() const { return plan_.family; }
  const SsdShape &ssd() const { return plan_.ssd; } // length: the padded one
  // analyze --mixer's figures for it (MACs per sequence, the chunk chosen).
  const MixerAnalysis &analysis() const { return plan_.analysis; }

  // Threads a call may use (sequences, or blocks of channels, are split
  // between them).
  void setThreads(int threads);

  // y for `batch` sequences; one pointer per operand.
  Result<bool> forward(const std::vector<const float *> &in, int64_t batch,
                       float *y) const;
  // What a training forward keeps for its backward: per sequence, the
  // forward values from which the backward has all it reads without
  // computing the forward's contractions again (the function's residuals,
  // from --einstruct-autodiff's save-residuals). Empty for m2-conv and
  // monarch-seq, whose backward recomputes little. Holds pool memory until
  // destroyed (Hydra's block at L = 1024, d_model 768: 33 MB per sequence).
  class Saved {
  public:
    ~Saved();
    Saved(const Saved &) = delete;
    Saved &operator=(const Saved &) = delete;
    // The residuals' bytes, all sequences together.
    int64_t bytes() const;

  private:
    friend class JitMixer;
    Saved() = default;
    // Per sequence: its residuals, and the pool blocks they own.
    std::vector<std::vector<Descriptor>> sequences;
    std::vector<std::vector<void *>> blocks;
  };
  // forward(), keeping the residuals (compiles the backward first).
  Result<std::unique_ptr<Saved>>
  forwardSaving(const std::vector<const float *> &in, int64_t batch,
                float *y) const;
  // The gradients of <dy, y> with respect to every operand, into `grads`
  // (one pointer per operand, shaped like it: a shared operand's summed
  // over the batch). `saved` is forwardSaving's on the same operands and
  // batch; without it the forward runs again first, sequence by sequence.
  Result<bool> backward(const std::vector<const float *> &in, const float *dy,
                        int64_t batch, const std::vector<float *> &grads,
                        const Saved *saved = nullptr) const;
  // compile() builds the forward alone; this builds the backward, once,
  // for whichever thread asks first. backward() calls it, so inference
  // never pays for it (for Hydra's block at L = 1024, d_model 768, three
  // quarters of the compile); call it to compile ahead, or to time it.
  Result<bool> compileBackward() const;

private:
  JitMixer() = default;
  Result<bool> check(const std::vector<const float *> &in, int64_t batch) const;
  // The mixer's function (its backward derived too when `backward`),
  // compiled for the entry "mixer" or the backward's (backward_).
  Result<std::unique_ptr<JitModule>> compileModule(bool backward) const;
  // ssd, hydra and the blocks, compiled whole (JitMixer.cpp): with dy
  // null the forward into y (its residuals into `save` when given), else
  // the gradients into grads (from `saved` when given).
  Result<bool> wholeRun(const std::vector<const float *> &in, const float *dy,
                        int64_t batch, float *y,
                        const std::vector<float *> &grads, Saved *save,
                        const Saved *saved) const;
  bool whole() const { return plan_.chunkedSsd() || plan_.isBlock(); }
  // m2-conv and monarch-seq (JitLinearMixer.cpp): blocks of channels, one
  // compiled call per block and group of sequences; with dy null the
  // forward into y, else the gradients into grads.
  Result<bool> linearRun(const std::vector<const float *> &in, const float *dy,
                         int64_t batch, float *y,
                         const std::vector<float *> &grads) const;
  MixerPlan plan_;
  std::vector<M2ConvConstant> constants_; // mixerConstants
  std::vector<Operand> operands_;
  std::unique_ptr<JitModule> forward_; // entry: mixer
  VectorUnits units_;
  mutable std::once_flag backwardOnce_;
  // Entries: mixer_saving and mixer_backward_saved (whole()), else
  // mixer_backward.
  mutable std::unique_ptr<JitModule> backward_;
  mutable std::vector<size_t> residualRanks_; // mixer_saving's, after y
  mutable std::string backwardError_;
  int threads_ = 1;
};

} // namespace einstruct
