#include "ExtentSource.h"

#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace einstruct {

std::optional<ExtentSource> extentSource(mlir::Value v, int64_t k) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  mlir::Operation *op = v.getDefiningOp();
  if (!op)
    return std::nullopt;
  auto dynamicAt = [&](mlir::Value o, int64_t d) {
    auto t = mlir::dyn_cast<mlir::RankedTensorType>(o.getType());
    return t && d < t.getRank() && t.isDynamicDim(d);
  };
  auto sameRank = [&](mlir::Value o) {
    auto t = mlir::dyn_cast<mlir::RankedTensorType>(o.getType());
    return t && t.getRank() == type.getRank();
  };
  auto size = [](mlir::OpFoldResult r) {
    ExtentSource s;
    s.size = r;
    return s;
  };
  auto of = [](mlir::Value o, llvm::ArrayRef<int64_t> dims,
               int64_t offset = 0) {
    ExtentSource s;
    s.operand = o;
    s.dims.assign(dims.begin(), dims.end());
    s.offset = offset;
    return s;
  };
  if (auto e = mlir::dyn_cast<mlir::tensor::ExpandShapeOp>(op))
    return size(e.getMixedOutputShape()[size_t(k)]);
  if (auto c = mlir::dyn_cast<mlir::tensor::CollapseShapeOp>(op)) {
    const auto groups = c.getReassociationIndices(); // a temporary
    return of(c.getSrc(), groups[size_t(k)]);
  }
  if (auto e = mlir::dyn_cast<mlir::tensor::EmptyOp>(op))
    return size(e.getMixedSizes()[size_t(k)]);
  if (auto s = mlir::dyn_cast<mlir::tensor::ExtractSliceOp>(op);
      s && sameRank(s.getSource()))
    return size(s.getMixedSizes()[size_t(k)]);
  if (auto p = mlir::dyn_cast<mlir::tensor::PadOp>(op)) {
    if (p.getStaticLow().empty() ||
        mlir::ShapedType::isDynamic(p.getStaticLow()[size_t(k)]) ||
        mlir::ShapedType::isDynamic(p.getStaticHigh()[size_t(k)]))
      return std::nullopt;
    return of(p.getSource(), {k},
              p.getStaticLow()[size_t(k)] + p.getStaticHigh()[size_t(k)]);
  }
  if (auto f = mlir::dyn_cast<mlir::linalg::FillOp>(op))
    return of(f.getOutputs()[0], {k});
  if (auto t = mlir::dyn_cast<mlir::linalg::TransposeOp>(op))
    return of(t.getInput(), {t.getPermutation()[size_t(k)]});
  if (auto l = mlir::dyn_cast<LayerOp>(op)) {
    if (k + 1 < type.getRank() && sameRank(l.getInput()))
      return of(l.getInput(), {k}); // a leading (batch) extent
    return std::nullopt;
  }
  if (auto c = mlir::dyn_cast<ContractOp>(op)) {
    auto spec = parseEinsumLetters(c.getSpec().str());
    if (!spec)
      return std::nullopt;
    const char letter = spec->output[size_t(k)];
    if (auto at = spec->input.find(letter); at != std::string::npos)
      return of(c.getLhs(), {int64_t(at)});
    if (auto at = spec->weights[0].find(letter); at != std::string::npos)
      return of(c.getRhs(), {int64_t(at)});
    return std::nullopt;
  }
  // The SSD ops' leading (sequence) extent is their operands'.
  if (mlir::isa<ChunkDecaysOp, ChunkDecaysGradOp, ChunkScanOp, ChunkScanGradOp>(
          op)) {
    for (mlir::Value o : op->getOperands())
      if (k == 0 && dynamicAt(o, 0))
        return of(o, {0});
    return std::nullopt;
  }
  // Elementwise: an operand's same extent.
  if (mlir::isa<UnaryOp, ReverseOp>(op) ||
      op->hasTrait<mlir::OpTrait::Elementwise>())
    for (mlir::Value o : op->getOperands())
      if (sameRank(o) && dynamicAt(o, k))
        return of(o, {k});
  return std::nullopt;
}

} // namespace einstruct
