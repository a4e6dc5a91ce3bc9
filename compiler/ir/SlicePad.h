// Static windows of tensors: tensor.extract_slice with unit strides and
// tensor.pad with zeros, each the other's vector–Jacobian product (Hydra's
// shift by one token and direction halves, the chunk's zero padding). A
// dynamic dimension is kept whole.
#pragma once
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace einstruct {

// v[offsets : offsets + sizes], sizes[d] kDynamic for a dynamic dimension.
mlir::Value staticSlice(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                        llvm::ArrayRef<int64_t> offsets,
                        llvm::ArrayRef<int64_t> sizes);

// v with low[d] zeros before and high[d] after it along each dimension.
mlir::Value zeroPad(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                    llvm::ArrayRef<int64_t> low, llvm::ArrayRef<int64_t> high);

// Whether `v` is an arith.constant 0.0, by the op's class: MLIR's
// m_AnyZeroFloat (a ConstantLike trait check) did not match it inside the
// runtime's shared library, where the C ABI's mixers failed with it.
bool isZeroConstant(mlir::Value v);

// Whether a slice or pad is one of these (static offsets and widths, unit
// strides, the rank kept, dynamic dimensions whole, zeros padded in), which
// autodiff and the CUDA chain take; else an error at the op saying which.
mlir::LogicalResult checkStaticSlice(mlir::tensor::ExtractSliceOp op);
mlir::LogicalResult checkZeroPad(mlir::tensor::PadOp op);

} // namespace einstruct
