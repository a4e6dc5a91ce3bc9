// Builds the einstruct IR of a sequence mixer's core (structures.md §7) as
// einstruct.contract ops, so that --einstruct-autodiff derives its backward
// and the CPU pipeline compiles both: chunked SSD (Mamba-2's state-space
// duality) around einstruct.chunk_decays and chunk_scan, M2's long
// convolution through Monarch-factored DFTs, and a Monarch matrix along the
// sequence (EmitMixer.cpp); and Hydra's and M2's whole blocks around them
// (EmitBlock.cpp).
#pragma once
#include "search/Mixer.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>
#include <vector>

namespace einstruct {

// Appends func.func @name of the plan (emitSsd, emitHydra, emitM2Conv or
// emitSequenceEinsum below).
void emitMixer(mlir::ModuleOp module, const MixerPlan &plan,
               const std::string &name);

// Appends func.func @name(x[b, L, H, P], dt[b, L, H], a[b, L, H],
// B[b, L, N], C[b, L, N]) -> y[b, L, H, P] (Mamba-2's layouts, dt after its
// softplus and a = dt·A; mixerOperands' order) on L = plan.length tokens,
// b dynamic: with u = x ⊙ dt,
//   y[l] = Σ_{s ≤ l} (C_l · B_s) · exp(Σ_{t=s+1..l} a_t) · u_s
// per head, computed chunk by chunk (T = plan.ssd.length / Q chunks, the
// sequence zero-padded after its end to plan.ssd.length, which changes
// nothing before it): C·Bᵀ masked by the in-chunk decays times u; each
// chunk's state Σ_s decay(s → end)·u_s ⊗ B_s; the states passed from chunk
// to chunk (einstruct.chunk_scan); and read out through C times the decay
// from the chunk's start. These are the multiply-adds ssdMacs counts.
void emitSsd(mlir::ModuleOp module, const MixerPlan &plan,
             const std::string &name);

// Appends func.func @name(x[b, L, H, P], dt[b, L, 2, H], a[b, L, 2, H],
// B[b, L, 2, N], C[b, L, 2, N], d[b, L, H]) -> y[b, L, H, P], Hydra's
// quasiseparable mixer on L = plan.length tokens (mixerOperands'; index
// 2 is the direction, the backward pass's on the flipped sequence):
//   y = shift(SSD(x, dt₀, a₀, B₀, C₀)) + flip(shift(SSD(flip(x, dt₁, a₁,
//       B₁, C₁)))) + d ⊙ x,
// shift moving each token one later (zero first), each SSD emitSsd's.
void emitHydra(mlir::ModuleOp module, const MixerPlan &plan,
               const std::string &name);

// Appends func.func @name(x[b, L, d], in_proj's weights, conv1d.weight,
// conv1d.bias, dt_bias, A_log, D, fc_D.weight, norm_weight, out_proj's
// weights) -> y[b, L, d], goombalab/hydra's block (mixerOperands' order)
// around emitHydra's mixer on L = plan.length tokens:
// in_proj split into z, xBC and dt; dt = softplus(dt + dt_bias) per pass;
// x, B, C = SiLU(depthwise conv(xBC)); a = dt·(−exp(A_log)); the mixer
// with d = fc_D(x) + D; y·rsqrt(mean(y²) + 1e-5)·norm_weight·SiLU(z);
// out_proj. Elementwise functions are einstruct.unary, biases outer
// products with ones, the convolution a sum of shifted windows, so that
// --einstruct-autodiff derives every parameter's gradient.
void emitHydraBlock(mlir::ModuleOp module, const MixerPlan &plan,
                    const std::string &name);

// Appends func.func @name(x[b, L, d], in_linear's weights, in_linear.bias,
// short_filter.weight, short_filter.bias, filter_fn.z, filter_fn.freq,
// filter_fn.layers.{0,1,2}.{weight,bias}, filter_fn.layers.3.weight (and
// filter_rev's layers when bidirectional), bias, out_linear's weights,
// out_linear.bias, constants...) -> y[b, L, d], HazyResearch/m2's
// MonarchMixerSequenceMixing (JitMixer.h's m2-block operands) around
// emitM2Conv's convolution on L = s.length tokens: in_linear; the short
// depthwise convolution (3 taps, causal); x1, x2, v; Hyena's implicit
// filter k (an MLP with sine activations over the positional embedding's
// first L rows, times a fixed decay), k_rev too when bidirectional; the
// convolution of v ⊙ x1 with bias D; ⊙ x2; out_linear. The constants, in
// mixerConstants' order: the decay [L, d], then m2ConvConstants.
void emitM2Block(mlir::ModuleOp module, const MixerPlan &plan,
                 const std::string &name);

// Appends func.func @name(x[S, L, C], k[L, C], k_rev[L, C] (bidirectional
// only), D[C], constants...) -> y[S, L, C], the m2-conv `s` on C channels
// (S sequences, dynamic; JitMixer.h's operands), M2's fftconv_ref:
//   y_i = Σ_{j ≤ i} k_{i−j} x_j (+ Σ_{j > i} k_rev_{j−i−1} x_j) + D ⊙ x_i
// per channel. x is zero-padded onto the DFT grid of n = b² >= 2L points
// (token t at [t / b, t % b], J = s.rows rows), the kernel laid out on its
// Jk = s.kernelRows rows (k_rev reversed at its end), and the convolution,
// circular over n points (nothing wraps around), goes through DFTs
// Monarch-factored on the b×b grid: a DFT over the rows (real x, J rows),
// twiddles, a DFT over the columns, the product with the kernel's DFT
// (computed once for the S sequences), and the inverse in the opposite
// order keeping the J rows y fills, cut back to L. The DFT matrices and
// twiddles are arguments marked einstruct.constant, in the order
// m2ConvConstants gives them.
void emitM2Conv(mlir::ModuleOp module, const M2ConvShape &s, int64_t channels,
                const std::string &name);

// The constant arguments of emitM2Conv's function, row-major float32:
// Fx[J, b, 2] and Fk[Jk, b, 2] (the row DFT, real to complex; 2 = real,
// imaginary), Tw[b, b, 2, 2] (twiddles as 2×2 real matrices), W[b, 2, b, 2]
// (the column DFT), Sg[2, 2, 2] (a complex number to its 2×2 real
// matrix), Wi[b, 2, b, 2] (the inverse column DFT), Twi[b, b, 2, 2] (the
// inverse twiddles with 1/n) and R[b, 2, J] (the inverse row DFT's real
// part): their shapes, and with their values.
std::vector<std::vector<int64_t>> m2ConvConstantShapes(const M2ConvShape &s);
struct M2ConvConstant {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
std::vector<M2ConvConstant> m2ConvConstants(const M2ConvShape &s);

// m2-block's first constant: the decay of Hyena's filters on L tokens
// (hyena_utils.py's ExponentialModulation with its defaults),
// exp(−t_l·|δ_c|) as [L, d] (EmitBlock.cpp).
M2ConvConstant hyenaDecay(const M2BlockShape &block, int64_t L);

// The constant arguments of the plan's function after its operands (none,
// m2-conv's DFT matrices, m2-block's decay and DFT matrices).
std::vector<M2ConvConstant> mixerConstants(const MixerPlan &plan);

// Appends func.func @name(x[S, L, C], w1, w2) -> y[S, L, C]: the one-term
// einsum `t` (x, w1, w2 -> y) of a feature map from L to L applied along
// the sequence to each of the C channels, as two einstruct.contract ops.
void emitSequenceEinsum(mlir::ModuleOp module, const EinsumTerm &t,
                        int64_t channels, const std::string &name);

} // namespace einstruct
