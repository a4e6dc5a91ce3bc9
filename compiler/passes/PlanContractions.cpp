// --einstruct-plan-contractions: an n-ary layer becomes pairwise contractions
// in the cheapest order, with every reshape explicit.
#include "ContractionChain.h"
#include "Passes.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace einstruct {
#define GEN_PASS_DEF_PLANCONTRACTIONS
#include "Passes.h.inc"

namespace {

struct PlanContractionsPass
    : impl::PlanContractionsBase<PlanContractionsPass> {
  void runOnOperation() override {
    llvm::SmallVector<LayerOp> layers;
    getOperation()->walk([&](LayerOp op) { layers.push_back(op); });
    for (LayerOp op : layers)
      if (mlir::failed(plan(op))) {
        signalPassFailure();
        return;
      }
  }

  mlir::LogicalResult plan(LayerOp op) {
    EinsumTerm t;
    std::string error;
    if (!termOf(op, t, error))
      return op.emitOpError() << error;
    if (t.input.empty() || t.output.empty())
      return op.emitOpError() << "x and y need at least one index each";
    auto cost = termCost(t);
    if (!cost)
      return op.emitOpError() << cost.error();
    auto xType = mlir::cast<mlir::RankedTensorType>(op.getInput().getType());
    auto yType = mlir::cast<mlir::RankedTensorType>(op.getResult().getType());
    int64_t rank = xType.getRank();
    if (rank < 2)
      return op.emitOpError() << "input needs a batch dimension (rank >= 2) "
                                 "to be planned";
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    // [batch..., d_in] → [N, d_in] → [N, Π x sizes] → [N, x sizes...].
    mlir::Value x = collapseBatch(b, loc, op.getInput());
    x = fitFeatures(b, loc, x, t.inDim());
    x = splitFeatures(b, loc, x, t.input, t.sizes);
    char n = batchLetter(t);
    std::map<char, int64_t> sizes = t.sizes;
    sizes[n] = mlir::cast<mlir::RankedTensorType>(x.getType()).getDimSize(0);
    std::vector<ChainOperand> rest;
    for (int k : cost->order)
      rest.push_back({op.getWeights()[k], t.weights[k]});
    mlir::Value y = contractChain(b, loc, {x, std::string(1, n) + t.input},
                                  rest, std::string(1, n) + t.output, sizes);
    // [N, y sizes...] → [N, Π y sizes] → [N, d_out] → [batch..., d_out].
    y = mergeFeatures(b, loc, y);
    y = fitFeatures(b, loc, y, op.getDOutAttr().getInt());
    if (rank > 2) {
      llvm::SmallVector<mlir::ReassociationIndices> r(2);
      for (int64_t k = 0; k < rank - 1; ++k)
        r[0].push_back(k);
      r[1].push_back(rank - 1);
      llvm::SmallVector<mlir::OpFoldResult> shape;
      for (int64_t k = 0; k < rank - 1; ++k)
        shape.push_back(
            xType.isDynamicDim(k)
                ? mlir::OpFoldResult(
                      mlir::tensor::DimOp::create(b, loc, op.getInput(), k)
                          .getResult())
                : mlir::OpFoldResult(b.getIndexAttr(xType.getDimSize(k))));
      shape.push_back(b.getIndexAttr(op.getDOutAttr().getInt()));
      y = mlir::tensor::ExpandShapeOp::create(b, loc, yType, y, r, shape);
    }
    if (y.getType() != yType)
      y = mlir::tensor::CastOp::create(b, loc, yType, y);
    op.replaceAllUsesWith(y);
    op.erase();
    return mlir::success();
  }
};

} // namespace
} // namespace einstruct
