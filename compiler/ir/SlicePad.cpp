#include "SlicePad.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

namespace einstruct {

namespace {

mlir::RankedTensorType typeOf(mlir::Value v) {
  return mlir::cast<mlir::RankedTensorType>(v.getType());
}

} // namespace

bool isZeroConstant(mlir::Value v) {
  auto c = v ? v.getDefiningOp<mlir::arith::ConstantOp>() : nullptr;
  auto f = c ? mlir::dyn_cast<mlir::FloatAttr>(c.getValue()) : nullptr;
  return f && f.getValue().isZero();
}

mlir::Value staticSlice(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                        llvm::ArrayRef<int64_t> offsets,
                        llvm::ArrayRef<int64_t> sizes) {
  auto type = typeOf(v);
  llvm::SmallVector<mlir::OpFoldResult> at, size, step;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    at.push_back(b.getIndexAttr(offsets[size_t(d)]));
    size.push_back(
        type.isDynamicDim(d)
            ? mlir::OpFoldResult(mlir::tensor::DimOp::create(b, loc, v, d))
            : b.getIndexAttr(sizes[size_t(d)]));
    step.push_back(b.getIndexAttr(1));
  }
  auto result = mlir::RankedTensorType::get(sizes, type.getElementType());
  return mlir::tensor::ExtractSliceOp::create(b, loc, result, v, at, size,
                                              step);
}

mlir::Value zeroPad(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                    llvm::ArrayRef<int64_t> low, llvm::ArrayRef<int64_t> high) {
  auto type = typeOf(v);
  llvm::SmallVector<mlir::OpFoldResult> lo, hi;
  llvm::SmallVector<int64_t> shape;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    lo.push_back(b.getIndexAttr(low[size_t(d)]));
    hi.push_back(b.getIndexAttr(high[size_t(d)]));
    shape.push_back(type.isDynamicDim(d) ? type.getDimSize(d)
                                         : type.getDimSize(d) + low[size_t(d)] +
                                               high[size_t(d)]);
  }
  mlir::Value zero = mlir::arith::ConstantOp::create(
      b, loc, b.getZeroAttr(type.getElementType()));
  return mlir::tensor::PadOp::create(
      b, loc, mlir::RankedTensorType::get(shape, type.getElementType()), v, lo,
      hi, zero);
}

mlir::LogicalResult checkStaticSlice(mlir::tensor::ExtractSliceOp op) {
  auto src = op.getSourceType(), result = op.getResultType();
  if (!op.getOffsets().empty() || !op.hasUnitStride() ||
      result.getRank() != src.getRank())
    return op.emitOpError() << "takes only unit-stride slices at static "
                               "offsets that keep the rank here";
  for (int64_t d = 0; d < src.getRank(); ++d)
    if (src.isDynamicDim(d) &&
        (op.getStaticOffsets()[size_t(d)] || !result.isDynamicDim(d)))
      return op.emitOpError() << "slices dynamic dimension " << d
                              << ", which is kept whole here";
  return mlir::success();
}

mlir::LogicalResult checkZeroPad(mlir::tensor::PadOp op) {
  if (!op.getLow().empty() || !op.getHigh().empty() ||
      !isZeroConstant(op.getConstantPaddingValue()))
    return op.emitOpError() << "takes only zero pads of static widths here";
  auto src = op.getSourceType();
  for (int64_t d = 0; d < src.getRank(); ++d)
    if (src.isDynamicDim(d) &&
        (op.getStaticLow()[size_t(d)] || op.getStaticHigh()[size_t(d)]))
      return op.emitOpError()
             << "pads dynamic dimension " << d << ", which is kept whole here";
  return mlir::success();
}

} // namespace einstruct
