// --einstruct-lower-to-linalg: each pairwise contraction becomes one
// linalg.generic over a zero-filled accumulator.
#include "Passes.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_LOWERTOLINALG
#include "Passes.h.inc"

namespace {

struct LowerToLinalgPass : impl::LowerToLinalgBase<LowerToLinalgPass> {
  void runOnOperation() override {
    llvm::SmallVector<ContractOp> contracts;
    bool layersLeft = false;
    getOperation()->walk([&](mlir::Operation *op) {
      if (auto c = mlir::dyn_cast<ContractOp>(op))
        contracts.push_back(c);
      else if (auto l = mlir::dyn_cast<LayerOp>(op)) {
        l.emitOpError() << "run --einstruct-plan-contractions before lowering";
        layersLeft = true;
      }
    });
    if (layersLeft)
      return signalPassFailure();
    for (ContractOp op : contracts)
      lower(op);
  }

  void lower(ContractOp op) {
    auto t = parseEinsumLetters(op.getSpec().str());
    const std::string &lhs = t->input, &rhs = t->weights[0], &out = t->output;
    // Iteration space: the result's indices, then the summed ones.
    std::string dims = out;
    for (char c : lhs + rhs)
      if (dims.find(c) == std::string::npos)
        dims += c;
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    auto map = [&](const std::string &letters) {
      llvm::SmallVector<mlir::AffineExpr> exprs;
      for (char c : letters)
        exprs.push_back(b.getAffineDimExpr(unsigned(dims.find(c))));
      return mlir::AffineMap::get(unsigned(dims.size()), 0, exprs,
                                  b.getContext());
    };
    llvm::SmallVector<mlir::utils::IteratorType> iters;
    for (size_t k = 0; k < dims.size(); ++k)
      iters.push_back(k < out.size() ? mlir::utils::IteratorType::parallel
                                     : mlir::utils::IteratorType::reduction);
    auto resType = mlir::cast<mlir::RankedTensorType>(op.getType());
    // Dynamic result extents come from an operand holding the same index.
    llvm::SmallVector<mlir::Value> dynSizes;
    for (size_t k = 0; k < out.size(); ++k) {
      if (!resType.isDynamicDim(k))
        continue;
      size_t at = lhs.find(out[k]);
      mlir::Value src = op.getLhs();
      if (at == std::string::npos) {
        at = rhs.find(out[k]);
        src = op.getRhs();
      }
      dynSizes.push_back(
          mlir::tensor::DimOp::create(b, loc, src, int64_t(at)).getResult());
    }
    mlir::Type elt = resType.getElementType();
    mlir::Value empty =
        mlir::tensor::EmptyOp::create(b, loc, resType.getShape(), elt, dynSizes);
    mlir::Value zero =
        mlir::arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
    mlir::Value init =
        mlir::linalg::FillOp::create(b, loc, zero, empty).getResult(0);
    auto generic = mlir::linalg::GenericOp::create(
        b, loc, resType, mlir::ValueRange{op.getLhs(), op.getRhs()},
        mlir::ValueRange{init},
        llvm::ArrayRef<mlir::AffineMap>{map(lhs), map(rhs), map(out)}, iters,
        [&](mlir::OpBuilder &nb, mlir::Location nl, mlir::ValueRange args) {
          mlir::Value prod = mlir::arith::MulFOp::create(nb, nl, args[0], args[1]);
          mlir::Value sum = mlir::arith::AddFOp::create(nb, nl, args[2], prod);
          mlir::linalg::YieldOp::create(nb, nl, sum);
        });
    op.replaceAllUsesWith(generic.getResult(0));
    op.erase();
  }
};

} // namespace
} // namespace einstruct
