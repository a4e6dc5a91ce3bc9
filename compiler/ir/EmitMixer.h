// Builds the einstruct IR of a sequence mixer's core: chunked SSD (Mamba-2's
// state-space duality, structures.md §7) as einstruct.contract ops around one
// einstruct.chunk_decays, so that --einstruct-autodiff derives its backward
// and the CPU pipeline compiles both.
#pragma once
#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>

namespace einstruct {

// One group of B and C shared by the heads (Mamba-2's and Hydra's default).
struct SsdShape {
  int64_t heads = 0, headDim = 0, state = 0, chunk = 0;
  int64_t length = 0; // tokens per sequence, a multiple of chunk
};

// Appends func.func @name(x[b, L, H, P], a[b, L, H], B[b, L, N],
// C[b, L, N]) -> y[b, L, H, P] (Mamba-2's layouts), b dynamic:
//   y[l] = Σ_{s ≤ l} (C_l · B_s) · exp(Σ_{t=s+1..l} a_t) · x_s
// per head, computed chunk by chunk (T = L / Q chunks): C·Bᵀ masked by the
// in-chunk decays times x; each chunk's state Σ_s decay(s → end)·x_s ⊗ B_s;
// the states passed from chunk to chunk (einstruct.chunk_scan); and read
// out through C times the decay from the chunk's start. These are the
// multiply-adds ssdMacs counts.
void emitSsd(mlir::ModuleOp module, const SsdShape &shape,
             const std::string &name);

} // namespace einstruct
