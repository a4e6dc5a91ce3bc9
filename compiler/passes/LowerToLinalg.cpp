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

  // Moves `letter` to the last dimension of `v` (a static tensor, e.g. a
  // weight) with a linalg.transpose; returns v and its letters unchanged
  // when the letter is already last, absent, or v has a dynamic shape.
  std::pair<mlir::Value, std::string>
  lastDimension(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                std::string letters, char letter) {
    auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
    size_t at = letters.find(letter);
    if (at == std::string::npos || at + 1 == letters.size() ||
        !type.hasStaticShape())
      return {v, letters};
    llvm::SmallVector<int64_t> perm, shape;
    std::string moved;
    for (size_t k = 0; k < letters.size(); ++k)
      if (k != at)
        perm.push_back(int64_t(k));
    perm.push_back(int64_t(at));
    for (int64_t k : perm) {
      shape.push_back(type.getDimSize(k));
      moved += letters[size_t(k)];
    }
    mlir::Value init =
        mlir::tensor::EmptyOp::create(b, loc, shape, type.getElementType());
    auto t = mlir::linalg::TransposeOp::create(b, loc, v, init, perm);
    return {t->getResult(0), moved};
  }

  void lower(ContractOp op) {
    auto t = parseEinsumLetters(op.getSpec().str());
    const std::string &out = t->output;
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    // Loop order: the result's outer indices, the summed indices, then the
    // result's last index innermost. That innermost loop is contiguous in
    // the result and (after moving it last in a static operand) in the
    // operands, so it runs as a vectorised multiply-add over a broadcast.
    char inner = out.back();
    auto [lhs, lhsLetters] =
        lastDimension(b, loc, op.getLhs(), t->input, inner);
    auto [rhs, rhsLetters] =
        lastDimension(b, loc, op.getRhs(), t->weights[0], inner);
    // Outer loops: indices of a static operand (a weight) first, so that
    // its slice stays in cache while the batch runs inside.
    std::string dims;
    std::string stat;
    for (auto [v, letters] : {std::pair{lhs, lhsLetters},
                              std::pair{rhs, rhsLetters}})
      if (mlir::cast<mlir::RankedTensorType>(v.getType()).hasStaticShape())
        stat += letters;
    for (bool weightFirst : {true, false})
      for (char c : out.substr(0, out.size() - 1))
        if ((stat.find(c) != std::string::npos) == weightFirst)
          dims += c;
    for (char c : lhsLetters + rhsLetters)
      if (out.find(c) == std::string::npos && dims.find(c) == std::string::npos)
        dims += c;
    dims += inner;
    auto map = [&](const std::string &letters) {
      llvm::SmallVector<mlir::AffineExpr> exprs;
      for (char c : letters)
        exprs.push_back(b.getAffineDimExpr(unsigned(dims.find(c))));
      return mlir::AffineMap::get(unsigned(dims.size()), 0, exprs,
                                  b.getContext());
    };
    llvm::SmallVector<mlir::utils::IteratorType> iters;
    for (char c : dims)
      iters.push_back(out.find(c) != std::string::npos
                          ? mlir::utils::IteratorType::parallel
                          : mlir::utils::IteratorType::reduction);
    auto resType = mlir::cast<mlir::RankedTensorType>(op.getType());
    // Dynamic result extents come from an operand holding the same index.
    llvm::SmallVector<mlir::Value> dynSizes;
    for (size_t k = 0; k < out.size(); ++k) {
      if (!resType.isDynamicDim(k))
        continue;
      size_t at = t->input.find(out[k]);
      mlir::Value src = op.getLhs();
      if (at == std::string::npos) {
        at = t->weights[0].find(out[k]);
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
        b, loc, resType, mlir::ValueRange{lhs, rhs}, mlir::ValueRange{init},
        llvm::ArrayRef<mlir::AffineMap>{map(lhsLetters), map(rhsLetters),
                                        map(out)},
        iters,
        [&](mlir::OpBuilder &nb, mlir::Location nl, mlir::ValueRange args) {
          // contract: let LLVM fuse the multiply-add into an FMA.
          auto fm = mlir::arith::FastMathFlags::contract;
          mlir::Value prod =
              mlir::arith::MulFOp::create(nb, nl, args[0], args[1], fm);
          mlir::Value sum =
              mlir::arith::AddFOp::create(nb, nl, args[2], prod, fm);
          mlir::linalg::YieldOp::create(nb, nl, sum);
        });
    op.replaceAllUsesWith(generic.getResult(0));
    op.erase();
  }
};

} // namespace
} // namespace einstruct
