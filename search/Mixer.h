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
// Elementwise work (exp, the decay masks, gates) is not counted.
#pragma once
#include "Named.h"

namespace einstruct {

struct MixerAnalysis {
  std::string family;
  int64_t seqLen = 0, channels = 0;
  int64_t chunk = 0;          // ssd/hydra: the chunk used
  bool chunkChosen = false;   // chosen to minimise MACs (not given)
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

// Chunked SSD's multiply-adds (see above) for heads H, head_dim P, state N,
// chunk Q on L tokens.
int64_t ssdMacs(int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q);

} // namespace einstruct
