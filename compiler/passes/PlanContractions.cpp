// --einstruct-plan-contractions: an n-ary layer becomes pairwise contractions
// in the cheapest order, with every reshape explicit.
#include "Passes.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_PLANCONTRACTIONS
#include "Passes.h.inc"

namespace {

using mlir::OpFoldResult;
using mlir::Value;

// A letter the term does not use, for the (collapsed) batch dimension.
char batchLetter(const EinsumTerm &t) {
  for (char c : std::string("nNbBzZ"))
    if (!t.sizes.count(c))
      return c;
  for (char c = 'a'; c <= 'z'; ++c)
    if (!t.sizes.count(c))
      return c;
  return 0;
}

// Zero-pads (or cuts) the last dimension of a [N, have] tensor to `want`.
Value fitFeatures(mlir::OpBuilder &b, mlir::Location loc, Value v,
                  int64_t want) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  int64_t have = type.getDimSize(1);
  if (have == want)
    return v;
  auto resultType = mlir::RankedTensorType::get(
      {type.getDimSize(0), want}, type.getElementType());
  if (want > have) {
    Value zero = mlir::arith::ConstantOp::create(
        b, loc, b.getZeroAttr(type.getElementType()));
    llvm::SmallVector<OpFoldResult> low = {b.getIndexAttr(0),
                                           b.getIndexAttr(0)};
    llvm::SmallVector<OpFoldResult> high = {b.getIndexAttr(0),
                                            b.getIndexAttr(want - have)};
    return mlir::tensor::PadOp::create(b, loc, resultType, v, low, high, zero);
  }
  OpFoldResult rows = type.isDynamicDim(0)
                          ? OpFoldResult(mlir::tensor::DimOp::create(b, loc, v, 0)
                                             .getResult())
                          : OpFoldResult(b.getIndexAttr(type.getDimSize(0)));
  return mlir::tensor::ExtractSliceOp::create(
      b, loc, resultType, v,
      llvm::ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
      llvm::ArrayRef<OpFoldResult>{rows, b.getIndexAttr(want)},
      llvm::ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
}

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
    char n = batchLetter(t);
    auto cost = termCost(t);
    if (!cost)
      return op.emitOpError() << cost.error();
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    auto xType = mlir::cast<mlir::RankedTensorType>(op.getInput().getType());
    auto yType = mlir::cast<mlir::RankedTensorType>(op.getResult().getType());
    mlir::Type elt = xType.getElementType();
    int64_t rank = xType.getRank();
    if (rank < 2)
      return op.emitOpError() << "input needs a batch dimension (rank >= 2) "
                                 "to be planned";
    // 1. Batch dimensions collapse into one: [N, d_in].
    Value x = op.getInput();
    llvm::SmallVector<mlir::ReassociationIndices> outer(2);
    for (int64_t k = 0; k < rank - 1; ++k)
      outer[0].push_back(k);
    outer[1].push_back(rank - 1);
    int64_t batch = 1;
    for (int64_t k = 0; k < rank - 1; ++k)
      batch = xType.isDynamicDim(k) || batch == mlir::ShapedType::kDynamic
                  ? mlir::ShapedType::kDynamic
                  : batch * xType.getDimSize(k);
    if (rank > 2)
      x = mlir::tensor::CollapseShapeOp::create(b, loc, x, outer);
    // 2. Features padded or cut to the indices' product, then one dim each.
    x = fitFeatures(b, loc, x, t.inDim());
    auto shapeOf = [&](const std::string &letters) {
      llvm::SmallVector<int64_t> shape = {batch};
      for (char c : letters)
        shape.push_back(t.sizes.at(c));
      return shape;
    };
    auto split = [&](size_t count) {
      llvm::SmallVector<mlir::ReassociationIndices> r(2);
      r[0].push_back(0);
      for (size_t k = 0; k < count; ++k)
        r[1].push_back(int64_t(k + 1));
      return r;
    };
    Value cur = x;
    if (t.input.size() > 1)
      cur = mlir::tensor::ExpandShapeOp::create(
          b, loc, mlir::RankedTensorType::get(shapeOf(t.input), elt), cur,
          split(t.input.size()));
    std::string letters = std::string(1, n) + t.input;
    // 3. The chain, cheapest order first.
    for (size_t k = 0; k < cost->order.size(); ++k) {
      const std::string &w = t.weights[cost->order[k]];
      std::string res;
      if (k + 1 == cost->order.size()) {
        res = std::string(1, n) + t.output;
      } else {
        auto needed = [&](char c) {
          if (c == n || t.output.find(c) != std::string::npos)
            return true;
          for (size_t j = k + 1; j < cost->order.size(); ++j)
            if (t.weights[cost->order[j]].find(c) != std::string::npos)
              return true;
          return false;
        };
        for (char c : letters + w)
          if (needed(c) && res.find(c) == std::string::npos)
            res += c;
      }
      llvm::SmallVector<int64_t> shape = shapeOf(res.substr(1));
      auto resType = mlir::RankedTensorType::get(shape, elt);
      cur = ContractOp::create(b, loc, resType, cur,
                               op.getWeights()[cost->order[k]],
                               b.getStringAttr(letters + "," + w + "->" + res));
      letters = res;
    }
    // 4. Back to [N, d_out], then to the original batch shape.
    if (t.output.size() > 1)
      cur = mlir::tensor::CollapseShapeOp::create(b, loc, cur,
                                                  split(t.output.size()));
    cur = fitFeatures(b, loc, cur, op.getDOutAttr().getInt());
    if (rank > 2) {
      llvm::SmallVector<OpFoldResult> shape;
      for (int64_t k = 0; k < rank - 1; ++k)
        shape.push_back(
            xType.isDynamicDim(k)
                ? OpFoldResult(mlir::tensor::DimOp::create(b, loc,
                                                           op.getInput(), k)
                                   .getResult())
                : OpFoldResult(b.getIndexAttr(xType.getDimSize(k))));
      shape.push_back(b.getIndexAttr(op.getDOutAttr().getInt()));
      cur = mlir::tensor::ExpandShapeOp::create(b, loc, yType, cur, outer,
                                                shape);
    }
    if (cur.getType() != yType)
      cur = mlir::tensor::CastOp::create(b, loc, yType, cur);
    op.replaceAllUsesWith(cur);
    op.erase();
    return mlir::success();
  }
};

} // namespace
} // namespace einstruct
