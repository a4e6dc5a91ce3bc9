// Sequence mixers (structures.md §7): y = M·x along the sequence axis, per
// channel or head, with M structured. A mixer is named like a structure,
// "ssd(heads=12, head_dim=64, state=64, chunk=64)", and costed per sequence
// of length L: the multiply-adds of its contractions, those of the
// materialised L×L form for comparison, its own parameters (the block's
// projections are einstruct layers, costed as layers), the bytes a pass
// reads and writes once, and the matrix-mixer properties.
//
// Counted (batch 1; G = 1 group of B, C shared by the heads; T = ⌈L/Q⌉
// chunks, L zero-padded to T·Q):
//   ssd    chunked SSD (Mamba-2): C·Bᵀ per chunk T·Q²·N, its masked product
//          with X H·T·Q²·P, chunk states H·T·Q·N·P, the inter-chunk scan
//          H·T·N·P, the states read out H·T·Q·N·P. Materialised: L²·N +
//          H·L²·P. Params: A_log, dt_bias, D (3·H).
//   hydra  two SSD passes (forward and on the flipped sequence, each with
//          its own B, C, dt), shifted by one, plus the data-dependent skip
//          x ⊙ (fc_D(x) + D): fc_D is H·P → H (L·H·P·H), the product L·H·P
//          (goombalab/hydra, hydra/modules/hydra.py). Params: A_log,
//          dt_bias, D (3·H) and fc_D (H·P·H).
//   dense-seq    a learned L×L matrix shared by the d_model channels
//                (MLP-Mixer's token mixing): L²·d MACs, L² params.
//   toeplitz     a learned kernel per channel, M[i, j] = k[i − j]
//                (2L − 1 taps), applied directly: L²·d MACs.
//   low-rank-seq a learned U·Vᵀ of rank r shared by the channels: 2·L·r·d.
//   m2-conv      M2's gated long convolution y = u ⊙ (k ∗ (v ⊙ x) + D ⊙
//                (v ⊙ x)) per channel (HazyResearch/m2, bert/src/mm/
//                monarch_mixer_sequence_mixer.py, hyena_utils.py fftconv_ref):
//                as the CPU runs it (m2ConvCount), the DFTs of x and k and
//                the inverse over n = b² ≥ 2L points (padded to a square
//                unless pad=false), each Monarch-factored on the b×b grid:
//                a real first stage over the J = ⌈L/b⌉ rows x fills (2b²J),
//                twiddles (4b²), a complex second stage (4b³); the product
//                4b²; the inverse likewise, keeping the J rows of y; the skip;
//                the kernel's DFT once per call with its 2×2 real form (8b²);
//                the gates 2·L·d; the implicit filter (Hyena: an MLP of width
//                `order` over a 3-wide positional embedding, sine
//                activations) L·(3o + 2o² + o·d). Bidirectional, as the
//                reference: k_rev enters the same 2L-point kernel, flipped
//                into its end (all b rows of the kernel's DFT), and adds
//                k_rev's filter. Params: the filter MLP (3o + o, 2·(o² + o),
//                o·d), its frequencies o, bias d and positional embedding 3L
//                (the last three shared by k_rev's MLP).
//   monarch-seq  a learned Monarch matrix along the sequence shared by the
//                channels: two block-diagonal factors of `blocks` blocks of
//                (L/blocks)² each, 2·L·(L/blocks)·d; params 2·L·(L/blocks).
//   hydra-block  goombalab/hydra's whole block around the hydra mixer
//                (d_model channels, d_inner = expand·d_model, heads =
//                d_inner / head_dim): in_proj d → 2·d_inner + 4·state +
//                2·heads, the depthwise convolution (conv taps, odd) on
//                x, B, C, the mixer as hydra above, the gated RMS norm
//                4·d_inner per token, out_proj d_inner → d. Params: those
//                and the mixer's. in_proj and out_proj may be structured
//                (blockProjections below): their MACs and params.
//   m2-block     HazyResearch/m2's MonarchMixerSequenceMixing on d_model
//                channels around the m2-conv above (its filters, gates and
//                skip counted there): in_linear d → 3d, the short causal
//                depthwise convolution (3 taps) on those 3d, out_linear
//                d → d. Params: those with their biases, the m2-conv's, and
//                the positional embedding's 3·(l_max − L) beyond L.
//                in_linear and out_linear may be structured, as Hydra's.
// Elementwise work (exp, the decay masks, gates) is not counted, except
// m2-conv's gates and skip above.
#pragma once
#include "Einsum.h"
#include "Named.h"

namespace einstruct {

// One of a block's two large projections (Hydra's in_proj and out_proj,
// M2's in_linear and out_linear): dense, torch's Linear weight [d_out,
// d_in] named NAME.weight, or a structured `layer`, its weights named
// NAME.weights.0, ... as einstruct.Linear's (what convert() puts there).
struct BlockProjection {
  std::string name;
  int64_t dIn = 0, dOut = 0;
  std::optional<Layer> layer;
  int64_t macs() const;   // per token
  int64_t params() const; // weights, no bias
};

// A block's projections as its spec makes them: each NAME=STRUCTURE (a
// named structure, "monarch(blocks=8)"), else proj=STRUCTURE for both, else
// dense; or proj=search(max_flops_ratio | max_flops), the model search
// (ModelSearch.h) choosing both under one budget of MACs per token, as
// convert(block, budget, layers=[both]) does, so that the two agree.
// `slots` are the projections' names and sizes, in the module's order.
Result<std::vector<BlockProjection>>
blockProjections(const NamedSpec &spec,
                 const std::vector<BlockProjection> &slots);

struct MixerAnalysis {
  std::string family;
  int64_t seqLen = 0, channels = 0;
  int64_t chunk = 0;          // ssd/hydra: the chunk used
  bool chunkChosen = false;   // not given: chosen (kMinChosenChunk)
  int64_t fftSize = 0;        // m2-conv: the Monarch DFT's n = b²
  int64_t blocks = 0;         // monarch-seq: blocks per factor
  int64_t macs = 0;           // per sequence
  int64_t quadraticMacs = 0;  // the materialised L×L form's
  int64_t params = 0;
  int64_t bytes = 0;          // float32 inputs, outputs and params, once
  bool causal = false;
  bool dataDependent = false; // M depends on x (sequence-aligned)
  bool extendable = false;    // runs at other lengths with the same params
  std::string growth;         // MACs' order in L at fixed sizes: "L", "L^2"
  std::vector<BlockProjection> projections; // the blocks': in, out
};

// Bounds on a mixer's sizes, so that every count fits 64 bits with room
// to spare.
inline constexpr int64_t kMaxMixerSeqLen = int64_t(1) << 24;
inline constexpr int64_t kMaxMixerSize = int64_t(1) << 20;
// Every count (multiply-adds, params, bytes) stays below 2^62.
inline constexpr long double kMaxMixerCount = 4.6e18;

// Mixer family names, for help texts and errors; searchedMixerFamilies
// leaves out the whole blocks (hydra-block, m2-block), which search does
// not rank
// against the mixers inside them.
const std::vector<std::string> &mixerFamilies();
const std::vector<std::string> &searchedMixerFamilies();

Result<NamedSpec> parseMixer(std::string_view text);

// The smallest chunk an ssd or hydra without `chunk` gets (L when shorter):
// below it the fewest multiply-adds (the minimum is near √state) do not make
// the fastest run, as the in-chunk contractions get too small for the
// micro-kernel. At 12 heads of 64 and state 64, forward on 2 CPU cores:
// chunk 64 ran fastest at L = 256, 1024 and 4096, chunk 8 (the fewest
// multiply-adds) about 3× slower (bench/README.md).
inline constexpr int64_t kMinChosenChunk = 64;

// `spec` on sequences of `seqLen` tokens of `dModel` channels; ssd and hydra
// without `chunk` get the one of at least kMinChosenChunk (or L) with the
// fewest multiply-adds, the larger on a tie.
Result<MixerAnalysis> analyzeMixer(const NamedSpec &spec, int64_t seqLen,
                                   int64_t dModel);

// Whether the CPU runs `spec`'s family (ssd, hydra, m2-conv, monarch-seq);
// the error names the others.
Result<bool> runsOnCpu(const NamedSpec &spec);

// hydra-block's sizes: d_model, d_inner = expand·d_model = heads·head_dim,
// the SSD state, the convolution's taps (odd: padded conv/2 on each side
// to keep L tokens, as the reference's padding = d_conv // 2).
struct HydraBlockShape {
  int64_t dModel = 0, inner = 0, heads = 0, headDim = 0, state = 0, conv = 0;
  int64_t inProj() const { return 2 * inner + 4 * state + 2 * heads; }
  int64_t convChannels() const { return inner + 4 * state; }
};
Result<HydraBlockShape> hydraBlockShape(const NamedSpec &spec, int64_t dModel);

// m2-block's sizes: d_model, the Hyena filters' MLP width `order`, their
// positional embedding's length l_max (>= L; the block reads its first L
// rows) and sine scale w_mod, and the m2-conv inside (conv.causal false:
// bidirectional, a second filter k_rev sharing the embedding and the
// sine frequencies).
struct M2BlockShape {
  int64_t dModel = 0, order = 0, lMax = 0;
  double wMod = 1;
  static constexpr int64_t kShortTaps = 3; // the reference's short filter
};
Result<M2BlockShape> m2BlockShape(const NamedSpec &spec, int64_t L,
                                  int64_t dModel);

// Chunked SSD's sizes as the CPU compiles it: one group of B and C shared
// by the heads (Mamba-2's and Hydra's default).
struct SsdShape {
  int64_t heads = 0, headDim = 0, state = 0, chunk = 0;
  int64_t length = 0; // tokens per sequence, padded to a multiple of chunk
};

// An m2-conv on L tokens as the CPU runs it: the DFT of n = b² >= 2L
// points laid out as a b×b grid (token t at row t / b, column t % b); x
// and y fill its first `rows` = ⌈L/b⌉ rows, the kernel `kernelRows` (the
// bidirectional one's k_rev sits at the end: all b).
struct M2ConvShape {
  bool causal = true;
  int64_t length = 0, b = 0, rows = 0, kernelRows = 0;
};
Result<M2ConvShape> m2ConvShape(const NamedSpec &spec, int64_t L);
// The multiply-adds of its compiled contractions for d channels and
// `sequences` sharing one kernel DFT (see m2-conv above).
long double m2ConvCount(const M2ConvShape &s, int64_t d, int64_t sequences);

// monarch-seq(blocks) on L tokens: fly's MonarchLinear(nblocks = blocks)
// from L to L (search/Named.cpp, flyMonarch) applied along the sequence;
// its einsum with weights as fly stores them, (k, q, p) and (l, s, r).
Result<EinsumTerm> monarchSeqTerm(const NamedSpec &spec, int64_t L);

// A mixer as the CPU compiles it (compiler/ir/EmitMixer.h emits it): its
// family's sizes, the channels one compiled call takes, and its analysis.
struct MixerPlan {
  std::string family;
  int64_t length = 0, channels = 0; // tokens per sequence, d_model
  SsdShape ssd;                     // ssd, hydra (the chunk as analyzeMixer
                                    // chooses it when not given)
  M2ConvShape conv;                 // m2-conv
  EinsumTerm monarch;               // monarch-seq
  HydraBlockShape block;            // hydra-block (its mixer in ssd)
  M2BlockShape m2;                  // m2-block (its m2-conv in conv)
  int64_t channelBlock = 0;         // m2-conv, monarch-seq: per call
  MixerAnalysis analysis;
  bool chunkedSsd() const { return family == "ssd" || family == "hydra"; }
  bool isBlock() const {
    return family == "hydra-block" || family == "m2-block";
  }
};
// `spec` on L tokens of `channels` (d_model; 0 for ssd and hydra takes
// heads · head_dim, which a nonzero value must equal; m2-conv and
// monarch-seq need it). A family the CPU does not run, and bad sizes, are
// errors naming them.
Result<MixerPlan> planMixer(const NamedSpec &spec, int64_t L, int64_t channels);

// One operand of a compiled mixer's call, per sequence (a call takes a
// batch of sequences, each tensor row-major as [batch, shape...]) or, when
// not perSequence, one for the whole batch (a parameter: its gradient is
// summed over the sequences). compiler/cpu/JitMixer.h says what each is.
struct MixerOperand {
  std::string name;
  std::vector<int64_t> shape;
  bool perSequence = true;
};
std::vector<MixerOperand> mixerOperands(const MixerPlan &p);
// y's shape per sequence: [L, H, P] (ssd, hydra) or [L, C] (the others,
// hydra-block's C being d_model).
std::vector<int64_t> mixerOutputShape(const MixerPlan &p);

// Chunked SSD's multiply-adds (see above) for heads H, head_dim P, state N,
// chunk Q on L tokens.
int64_t ssdMacs(int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q);

// One candidate of a mixer search: its spec text and analysis.
struct MixerCandidate {
  std::string spec; // e.g. "ssd(heads=12, head_dim=64, state=64)"
  MixerAnalysis analysis;
};

struct MixerConstraints {
  std::optional<int64_t> maxMacs;
  std::optional<double> maxMacsRatio; // vs the dense L×L mixer's L²·d
  bool causal = false;                // keep causal mixers only
};

// Every mixer of `families` for sequences of L tokens and d channels:
// ssd/hydra with head_dim 32, 64 or 128 dividing d and state 16..128 (the
// chunk chosen), m2-conv causal and bidirectional (order 16), monarch-seq
// with the power-of-two block counts dividing L and the divisor nearest √L,
// low-rank-seq at power-of-two ranks below L, dense-seq and toeplitz.
Result<std::vector<MixerCandidate>>
enumerateMixers(const std::vector<std::string> &families, int64_t L,
                int64_t d);

// The candidates meeting `k`, best first: "matrix-mixer" puts
// data-dependent (sequence-aligned) mixers first, then those that run at any
// length, then fewest MACs (the Hydra paper's reading of which mixers
// work); "macs" ranks by MACs alone. Ties: fewer params, then the spec.
Result<std::vector<MixerCandidate>>
rankMixers(std::vector<MixerCandidate> all, const MixerConstraints &k,
           const std::string &objective, int64_t L, int64_t d);

// Real multiply-adds of a Monarch-factored complex DFT of n = b² points.
int64_t monarchDftMacs(int64_t b);
// Hyena's implicit filter (order o) for d channels at length L: params, and
// the multiply-adds of generating k.
int64_t hyenaFilterParams(int64_t L, int64_t d, int64_t order);
int64_t hyenaFilterMacs(int64_t L, int64_t d, int64_t order);

// The whole blocks' share of analyzeMixer, planMixer (p with its family
// and length set) and mixerOperands (Block.cpp).
Result<MixerAnalysis> analyzeBlock(const NamedSpec &spec, int64_t L, int64_t d);
Result<MixerPlan> planBlock(const NamedSpec &spec, MixerPlan p,
                            int64_t channels);
std::vector<MixerOperand> blockOperands(const MixerPlan &p);

} // namespace einstruct
