// Where a tensor's dynamic extent comes from, read off the op that defines
// it: one rule for the CUDA chain reader, which evaluates it as a multiple
// of the call's S, and for the residual cut, which builds it as index IR.
#pragma once

#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/Value.h"

#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <optional>

namespace einstruct {

// Extent = `size` where set (an index the IR holds: a reshape's output
// shape, an empty's or a slice's size); else the product of `operand`'s
// dimensions `dims`, plus `offset` (a pad's).
struct ExtentSource {
  mlir::OpFoldResult size;
  mlir::Value operand;
  llvm::SmallVector<int64_t, 2> dims;
  int64_t offset = 0;
};

// The source of dynamic dimension k of `v`, a ranked tensor defined by an
// op einstruct's lowering emits: reshapes, tensor.empty, slices, pads,
// fills, transposes, layers (their leading batch extent), contractions (by
// their letters), elementwise ops and the SSD ops (their leading sequence
// extent). None for a block argument or an op not listed.
std::optional<ExtentSource> extentSource(mlir::Value v, int64_t k);

} // namespace einstruct
