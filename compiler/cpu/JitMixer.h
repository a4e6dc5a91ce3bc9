// A sequence mixer compiled for the CPU: chunked SSD (Mamba-2) and Hydra's
// quasiseparable mixer built from two SSD passes (structures.md §7). The
// SSD's forward and backward come from the dialect (emitSsd, then
// --einstruct-autodiff) through the CPU pipeline and JIT, as layers do.
#pragma once
#include "VectorUnits.h"
#include "compiler/ir/EmitMixer.h"
#include "search/Mixer.h"
#include "search/Result.h"

#include <memory>

namespace einstruct {

class JitModule;

class JitMixer {
public:
  ~JitMixer();
  // `spec` is ssd(...) or hydra(...) with heads, head_dim and state (the
  // chunk chosen as analyzeMixer does when not given), on sequences of
  // `length` tokens; a length the chunk does not divide is zero-padded
  // (causal, so padding after the end changes nothing before it).
  static Result<std::unique_ptr<JitMixer>>
  compile(const NamedSpec &spec, int64_t length,
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
  // y is [L, H, P]; with SSD(u, a, B, C)_l = Σ_{s ≤ l} (C_l·B_s)
  // exp(Σ_{t=s+1..l} a_t) u_s (ssd_minimal_discrete's X·dt and A·dt):
  //   ssd    y = SSD(x ⊙ dt, a, B, C)
  //   hydra  y = shift(SSD_fwd(x ⊙ dt_fwd)) + flip(shift(SSD_bwd(flip(x ⊙
  //          dt_bwd)))) + d ⊙ x, shift moving each token one later.
  struct Operand {
    std::string name;
    std::vector<int64_t> shape;
  };
  const std::vector<Operand> &operands() const { return operands_; }
  std::vector<int64_t> outputShape() const {
    return {length_, ssd_.heads, ssd_.headDim};
  }
  const std::string &family() const { return family_; }
  const SsdShape &ssd() const { return ssd_; } // length: the padded one
  // analyze --mixer's figures for it (MACs per sequence, the chunk chosen).
  const MixerAnalysis &analysis() const { return analysis_; }

  // Threads a call may use (sequences are split between them).
  void setThreads(int threads);

  // y for `batch` sequences; one pointer per operand.
  Result<bool> forward(const std::vector<const float *> &in, int64_t batch,
                       float *y) const;
  // The gradients of <dy, y> with respect to every operand, into `grads`
  // (one pointer per operand, shaped like it).
  Result<bool> backward(const std::vector<const float *> &in, const float *dy,
                        int64_t batch, const std::vector<float *> &grads) const;

private:
  JitMixer() = default;
  Result<bool> check(const std::vector<const float *> &in, int64_t batch) const;
  struct Core;
  // The compiled SSD's operands for `in` (JitMixer.cpp).
  Result<bool> gather(const std::vector<const float *> &in, int64_t batch,
                      Core &core) const;
  // The compiled SSD on `batch` sequences of length_ tokens (padded here
  // to the chunk), one per call: with dy null the forward, y into outs[0];
  // else the gradients of x, a, B and C into outs[0..3].
  Result<bool> ssdRun(const float *const in[4], const float *dy, int64_t batch,
                      float *const outs[4]) const;
  // One compiled call on `batch` sequences of the padded length.
  Result<bool> ssdRows(const float *const in[4], const float *dy,
                       int64_t batch, float *y, float *const grads[4]) const;
  std::string family_;
  int64_t length_ = 0;
  SsdShape ssd_;
  MixerAnalysis analysis_;
  std::vector<Operand> operands_;
  std::unique_ptr<JitModule> module_; // entries: ssd, ssd_backward
  int threads_ = 1;
};

} // namespace einstruct
