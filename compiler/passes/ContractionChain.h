// IR building blocks shared by the contraction planner and autodiff: batch
// collapsing, feature padding/cutting, index splitting, and a chain of
// pairwise einstruct.contract ops.
#pragma once
#include "search/Einsum.h"

#include "mlir/IR/Builders.h"

namespace einstruct {

// A letter `t` does not use, for the (collapsed) batch dimension.
char batchLetter(const EinsumTerm &t);

// [b0, ..., bk, d] → [b0·...·bk, d] (identity for rank 2).
mlir::Value collapseBatch(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v);

// [N, have] → [N, want]: zero-padded or cut at the end.
mlir::Value fitFeatures(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                        int64_t want);

// [N, Π sizes(letters)] ↔ [N, sizes(letters)...].
mlir::Value splitFeatures(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                          const std::string &letters,
                          const std::map<char, int64_t> &sizes);
mlir::Value mergeFeatures(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v);

// `v` (indexed by `letters`) as a linalg.transpose indexed by `to`.
mlir::Value permuted(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                     const std::string &letters, const std::string &to);

struct ChainOperand {
  mlir::Value value;
  std::string letters; // one per dimension of value
};

// Contracts `first` with each of `rest` in order; intermediate results keep
// only the letters still needed (by later operands or `out`), the last one
// has exactly `out`. `sizes` gives every letter's extent (kDynamic allowed).
mlir::Value contractChain(mlir::OpBuilder &b, mlir::Location loc,
                          ChainOperand first,
                          const std::vector<ChainOperand> &rest,
                          const std::string &out,
                          const std::map<char, int64_t> &sizes);

} // namespace einstruct
