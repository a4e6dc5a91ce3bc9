// Dense → structured: the weights of a structured layer closest, in the
// Frobenius norm, to a given dense matrix.
//
// A two-weight θ-space term maps block (f, g) of the dense matrix, rearranged
// as R[(e,b), (d,a)], to Σ_r W2[f,e,r,g,b]·W1[f,d,r,g,a]: a rank-r matrix.
// Its best approximation is the truncated SVD of each block (Eckart–Young;
// Van Loan–Pitsianis for the Kronecker-shaped blocks), and the blocks are
// independent, so per-block SVD is the global optimum: Monarch (r = 1 per
// block), BTT of any rank, low-rank (one block), Kronecker, generic θ.
// One-weight terms (dense, block-diagonal) keep the entries they hold.
#pragma once
#include "compiler/frontend/Npy.h"
#include "search/Layer.h"

namespace einstruct {

struct Projection {
  std::vector<NpyArray> weights; // in weightShapes(layer) order and layouts
  // ||W − M||_F / ||W||_F over the d_out × d_in entries, M rebuilt from the
  // float32 weights.
  double relativeError = 0;
  // The optimum's error from the discarded singular values (and the entries
  // padding cannot reach): relativeError equals it up to rounding. Padded
  // layers fit their padding as zeros, so there relativeError ≤ svdBound.
  double svdBound = 0;
};

// `dense` is (d_out, d_in), y = dense · x, as torch.nn.Linear.weight.
Result<Projection> projectDense(const Layer &layer, const NpyArray &dense);

} // namespace einstruct
