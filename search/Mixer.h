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
//   m2-conv      M2's gated long convolution y = u ⊙ (k ∗ (v ⊙ x)) + D ⊙ x
//                per channel (HazyResearch/m2, bert/src/mm/
//                monarch_mixer_sequence_mixer.py, hyena_utils.py fftconv_ref):
//                the DFTs of x and k and the inverse, each Monarch-factored
//                over n = b² points (n ≥ 2L causal, ≥ L bidirectional;
//                padded to a square unless pad=false): two stages of b
//                blocks b×b plus n twiddles, n·(2b + 1) complex multiply-adds
//                of 4 real ones; the pointwise product 4n; the gates and skip
//                3·L·d; the implicit filter (Hyena: an MLP of width `order`
//                over a 3-wide positional embedding, sine activations)
//                L·(3o + 2o² + o·d). Bidirectional adds k_rev's DFT and
//                filter. Params: the filter MLP (3o + o, 2·(o² + o), o·d),
//                its frequencies o, bias d and positional embedding 3L (the
//                last three shared by k_rev's MLP). The reference's
//                fftconv_ref pads to 2L in both directions; M2's paper and
//                FlashFFTConv run the bidirectional one at L, as here.
//   monarch-seq  a learned Monarch matrix along the sequence shared by the
//                channels: two block-diagonal factors of `blocks` blocks of
//                (L/blocks)² each, 2·L·(L/blocks)·d; params 2·L·(L/blocks).
// Elementwise work (exp, the decay masks, gates) is not counted, except
// m2-conv's gates and skip above.
#pragma once
#include "Named.h"

namespace einstruct {

struct MixerAnalysis {
  std::string family;
  int64_t seqLen = 0, channels = 0;
  int64_t chunk = 0;          // ssd/hydra: the chunk used
  bool chunkChosen = false;   // chosen to minimise MACs (not given)
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
};

// Mixer family names, for help texts and errors.
const std::vector<std::string> &mixerFamilies();

Result<NamedSpec> parseMixer(std::string_view text);

// `spec` on sequences of `seqLen` tokens of `dModel` channels.
Result<MixerAnalysis> analyzeMixer(const NamedSpec &spec, int64_t seqLen,
                                   int64_t dModel);

// An ssd or hydra mixer on L tokens as the CPU compiles it: its sizes (the
// chunk chosen as analyzeMixer does) and analysis (d_model = heads ·
// head_dim). Other families, and bad sizes, are errors naming them.
struct SsdMixer {
  int64_t heads = 0, headDim = 0, state = 0, chunk = 0;
  MixerAnalysis analysis;
};
Result<SsdMixer> ssdMixer(const NamedSpec &spec, int64_t L);

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

} // namespace einstruct
