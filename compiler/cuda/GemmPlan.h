// Layers whose terms each have one weight — dense, block-diagonal, DYAD (a
// sum of two block-diagonal terms) — run on the GPU as cuBLAS strided
// batched GEMMs, one batch entry per block, with small gather/scatter
// kernels where x or y is not laid out block-major or is padded. There is
// no second factor to fuse, so cuBLAS is the machinery (structures.md: these
// are the one-weight einsums).
//
// The plan is a list of steps, data only: the emitter prints each as one
// call and tests/unit/test_cuda_gemm_plan.cpp executes the same steps on
// the CPU (cuBLAS's column-major semantics included) against the JIT.
#pragma once
#include "compiler/cuda/CudaPlan.h"

#include <vector>

namespace einstruct {

// The arrays a step reads or writes. W and DW carry the term's index.
enum class GemmBuffer { X, Y, DY, DX, W, DW, XS, YS };

// cublasGemmStridedBatchedEx(opA, opB, m, n, k, A, lda, strideA, B, ldb,
// strideB, C, ldc, strideC, batch), column-major, alpha 1, beta 0 or 1; the
// token count is the dimension `tokens` names (0 m, 1 n, 2 k).
struct GemmCall {
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0;
  int tokens = 1;
  GemmBuffer a, b, c;
  int termA = 0, termB = 0, termC = 0; // for W/DW
  int64_t lda = 0, strideA = 0, ldb = 0, strideB = 0, ldc = 0, strideC = 0;
  int64_t batch = 1;
  bool accumulate = false; // beta = 1
};

// Block-major copies: for token t, block k < K, element e < M, the offset
// off = k·sK + e·sE in the strided array (row length `row`, entries at or
// past `limit` absent). Gather: dst[t][k][e] = off < limit ? src[t·row +
// off] : 0. Scatter: strided[t·row + off] (+)= src[t][k][e] for off < limit.
struct GemmCopy {
  GemmBuffer strided, packed;
  int64_t K = 1, M = 1, sK = 0, sE = 0, row = 0, limit = 0;
  bool accumulate = false; // scatter only
};

// Columns [from, row) of every token's row of `buffer` set to zero.
struct GemmFill {
  GemmBuffer buffer;
  int64_t from = 0, row = 0;
};

struct GemmStep {
  enum Kind { Gather, Gemm, Scatter, Fill } kind;
  GemmCall gemm;
  GemmCopy copy;
  GemmFill fill;
};

struct GemmPlan {
  Layer layer;
  CudaTarget target;
  std::vector<int64_t> weightElems; // per term
  int64_t xsElems = 0, ysElems = 0;   // scratch per token (XS, YS)
  std::vector<GemmStep> forward, backwardInput, backwardWeights;
  std::string why; // one line per term: how it runs
};

// Plans a layer whose every term has exactly one weight (letters: blocks in
// x, W and y; summed in x and W; outputs in W and y; at most one letter of
// each, the block letter outermost in W, and W's innermost letter a summed
// or an output one).
Result<GemmPlan> planGemm(const Layer &layer, const CudaTarget &target);

// Whether `layer` is for planGemm (every term has one weight).
bool isGemmLayer(const Layer &layer);

} // namespace einstruct
