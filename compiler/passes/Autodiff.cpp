// --einstruct-autodiff: backward functions as einsum contractions.
#include "LayerGradient.h"
#include "Passes.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"

namespace einstruct {
#define GEN_PASS_DEF_AUTODIFF
#include "Passes.h.inc"

namespace {

using mlir::Value;

// The layer ops whose results `v` sums (through arith.addf), or failure.
mlir::LogicalResult collectTerms(Value v, llvm::SmallVector<LayerOp> &terms) {
  if (auto layer = v.getDefiningOp<LayerOp>()) {
    terms.push_back(layer);
    return mlir::success();
  }
  if (auto add = v.getDefiningOp<mlir::arith::AddFOp>())
    return mlir::success(mlir::succeeded(collectTerms(add.getLhs(), terms)) &&
                         mlir::succeeded(collectTerms(add.getRhs(), terms)));
  return mlir::failure();
}

// A zero tensor of `type` (static shape).
Value zeros(mlir::OpBuilder &b, mlir::Location loc, mlir::Type t) {
  auto type = mlir::cast<mlir::RankedTensorType>(t);
  Value empty = mlir::tensor::EmptyOp::create(b, loc, type.getShape(),
                                              type.getElementType());
  Value zero = mlir::arith::ConstantOp::create(
      b, loc, b.getZeroAttr(type.getElementType()));
  return mlir::linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

Value addOrFirst(mlir::OpBuilder &b, mlir::Location loc, Value acc, Value v) {
  return acc ? mlir::arith::AddFOp::create(b, loc, acc, v).getResult() : v;
}

struct AutodiffPass : impl::AutodiffBase<AutodiffPass> {
  void runOnOperation() override {
    llvm::SmallVector<mlir::func::FuncOp> funcs;
    getOperation().walk([&](mlir::func::FuncOp f) {
      bool hasLayer = false;
      f.walk([&](mlir::Operation *op) {
        hasLayer |= mlir::isa<LayerOp, MoeLayerOp>(op);
      });
      if (hasLayer && !f.getSymName().ends_with("_backward"))
        funcs.push_back(f);
    });
    for (auto f : funcs)
      if (mlir::failed(differentiate(f))) {
        signalPassFailure();
        return;
      }
  }

  // The moe_layer whose (y, aux) `f` returns, as they are, with its input
  // the first argument and router and weights the others; else null.
  static MoeLayerOp returnedMoe(mlir::func::FuncOp f) {
    if (f.getBody().getBlocks().size() != 1)
      return nullptr;
    auto ret = mlir::cast<mlir::func::ReturnOp>(
        f.getBody().front().getTerminator());
    if (ret.getNumOperands() != 2)
      return nullptr;
    auto moe = ret.getOperand(0).getDefiningOp<MoeLayerOp>();
    if (!moe || ret.getOperand(0) != moe.getResult() ||
        ret.getOperand(1) != moe.getAuxLoss() ||
        moe.getInput() != f.getArgument(0) ||
        !mlir::isa<mlir::FloatType>(
            mlir::cast<mlir::RankedTensorType>(moe.getAuxLoss().getType())
                .getElementType()))
      return nullptr;
    llvm::SmallVector<Value> params = {moe.getRouter()};
    params.append(moe.getWeights().begin(), moe.getWeights().end());
    for (Value w : params) {
      auto arg = mlir::dyn_cast<mlir::BlockArgument>(w);
      if (!arg || arg.getOwner()->getParentOp() != f || arg.getArgNumber() == 0)
        return nullptr;
    }
    return moe;
  }

  // @f_backward(x, args..., dy, daux) -> (dx, dargs...): one moe_layer_grad
  // (lowered by --einstruct-lower-moe), zero for arguments the layer does
  // not read.
  mlir::LogicalResult differentiateMoe(mlir::func::FuncOp f, MoeLayerOp moe) {
    mlir::OpBuilder b(f);
    b.setInsertionPointAfter(f);
    mlir::Location loc = f.getLoc();
    llvm::SmallVector<mlir::Type> args(f.getArgumentTypes());
    args.append(f.getResultTypes().begin(), f.getResultTypes().end());
    auto bwd = mlir::func::FuncOp::create(
        b, loc, (f.getSymName() + "_backward").str(),
        b.getFunctionType(args, f.getArgumentTypes()));
    if (auto c = f->getAttr("llvm.emit_c_interface"))
      bwd->setAttr("llvm.emit_c_interface", c);
    b.setInsertionPointToStart(bwd.addEntryBlock());
    auto arg = [&](Value v) {
      return bwd.getArgument(mlir::cast<mlir::BlockArgument>(v).getArgNumber());
    };
    llvm::SmallVector<Value> weights;
    for (Value w : moe.getWeights())
      weights.push_back(arg(w));
    const unsigned n = f.getNumArguments();
    auto grad = MoeLayerGradOp::create(
        b, loc, moe.getInput().getType(), moe.getRouter().getType(),
        moe.getWeights().getTypes(), bwd.getArgument(0), arg(moe.getRouter()),
        weights, bwd.getArgument(n), bwd.getArgument(n + 1),
        moe.getSpecAttr(), moe.getSizesAttr(), moe.getDInAttr(),
        moe.getDOutAttr(), moe.getExpertsAttr(), moe.getTopKAttr());
    llvm::SmallVector<Value> outs(n);
    outs[0] = grad.getDinput();
    auto accumulate = [&](Value param, Value g) {
      unsigned k = mlir::cast<mlir::BlockArgument>(param).getArgNumber();
      outs[k] = addOrFirst(b, loc, outs[k], g);
    };
    accumulate(moe.getRouter(), grad.getDrouter());
    for (auto [w, g] : llvm::zip(moe.getWeights(), grad.getDweights()))
      accumulate(w, g);
    for (unsigned k = 1; k < n; ++k)
      if (!outs[k])
        outs[k] = zeros(b, loc, f.getArgumentTypes()[k]);
    mlir::func::ReturnOp::create(b, loc, outs);
    return mlir::success();
  }

  mlir::LogicalResult differentiate(mlir::func::FuncOp f) {
    if (auto moe = returnedMoe(f))
      return differentiateMoe(f, moe);
    auto fail = [&]() {
      return f.emitOpError()
             << "autodiff needs a function that returns a sum of "
                "einstruct.layer ops applied to its first argument, with "
                "weights taken from its other arguments, or the (y, "
                "aux_loss) of one einstruct.moe_layer";
    };
    if (f.getNumResults() != 1 || f.getNumArguments() < 2 ||
        f.getBody().getBlocks().size() != 1)
      return fail();
    auto ret = mlir::cast<mlir::func::ReturnOp>(
        f.getBody().front().getTerminator());
    llvm::SmallVector<LayerOp> terms;
    if (mlir::failed(collectTerms(ret.getOperand(0), terms)))
      return fail();
    for (LayerOp t : terms) {
      if (t.getInput() != f.getArgument(0))
        return fail();
      for (Value w : t.getWeights()) {
        auto arg = mlir::dyn_cast<mlir::BlockArgument>(w);
        if (!arg || arg.getOwner()->getParentOp() != f || arg.getArgNumber() == 0)
          return fail();
      }
    }
    // @f_backward(x, w..., dy) -> (dx, dw...)
    mlir::OpBuilder b(f);
    b.setInsertionPointAfter(f);
    mlir::Location loc = f.getLoc();
    llvm::SmallVector<mlir::Type> args(f.getArgumentTypes());
    mlir::Type yType = f.getResultTypes()[0];
    args.push_back(yType);
    llvm::SmallVector<mlir::Type> results(f.getArgumentTypes());
    auto bwd = mlir::func::FuncOp::create(
        b, loc, (f.getSymName() + "_backward").str(),
        b.getFunctionType(args, results));
    if (auto c = f->getAttr("llvm.emit_c_interface"))
      bwd->setAttr("llvm.emit_c_interface", c);
    b.setInsertionPointToStart(bwd.addEntryBlock());
    Value x = bwd.getArgument(0);
    Value dy = bwd.getArgument(bwd.getNumArguments() - 1);
    Value dx;
    llvm::SmallVector<Value> dw(f.getNumArguments());
    for (LayerOp t : terms) {
      llvm::SmallVector<Value> weights;
      for (Value w : t.getWeights())
        weights.push_back(
            bwd.getArgument(mlir::cast<mlir::BlockArgument>(w).getArgNumber()));
      auto grads = layerGradients(b, loc, t, x, weights, dy);
      if (mlir::failed(grads))
        return mlir::failure();
      dx = addOrFirst(b, loc, dx, grads->dx);
      for (auto [w, g] : llvm::zip(t.getWeights(), grads->dw)) {
        unsigned argNo = mlir::cast<mlir::BlockArgument>(w).getArgNumber();
        dw[argNo] = addOrFirst(b, loc, dw[argNo], g);
      }
    }
    llvm::SmallVector<Value> outs = {dx};
    for (unsigned k = 1; k < f.getNumArguments(); ++k) {
      if (!dw[k])
        dw[k] = zeros(b, loc, f.getArgumentTypes()[k]);
      outs.push_back(dw[k]);
    }
    mlir::func::ReturnOp::create(b, loc, outs);
    return mlir::success();
  }
};

} // namespace
} // namespace einstruct
