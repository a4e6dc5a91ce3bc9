// --einstruct-autodiff: backward functions by a reverse sweep whose rules
// are einsum contractions (and the SSD decays' own gradient).
#include "LayerGradient.h"
#include "Passes.h"
#include "Residuals.h"
#include "UnaryFunctions.h"
#include "compiler/ir/SlicePad.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "search/Einsum.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

namespace einstruct {
#define GEN_PASS_DEF_AUTODIFF
#include "Passes.h.inc"

namespace {

using mlir::Value;

// A zero tensor shaped like `like` (its dynamic extents read from it).
Value zerosLike(mlir::OpBuilder &b, mlir::Location loc, Value like) {
  auto type = mlir::cast<mlir::RankedTensorType>(like.getType());
  llvm::SmallVector<Value> dynamic;
  for (int64_t k = 0; k < type.getRank(); ++k)
    if (type.isDynamicDim(k))
      dynamic.push_back(mlir::tensor::DimOp::create(b, loc, like, k));
  Value empty = mlir::tensor::EmptyOp::create(b, loc, type.getShape(),
                                              type.getElementType(), dynamic);
  Value zero = mlir::arith::ConstantOp::create(
      b, loc, b.getZeroAttr(type.getElementType()));
  return mlir::linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

Value addOrFirst(mlir::OpBuilder &b, mlir::Location loc, Value acc, Value v) {
  return acc ? mlir::arith::AddFOp::create(b, loc, acc, v).getResult() : v;
}

struct AutodiffPass : impl::AutodiffBase<AutodiffPass> {
  using AutodiffBase::AutodiffBase;

  void runOnOperation() override {
    llvm::SmallVector<mlir::func::FuncOp> funcs;
    getOperation().walk([&](mlir::func::FuncOp f) {
      bool hasLayer = false;
      f.walk([&](mlir::Operation *op) {
        hasLayer |= mlir::isa<LayerOp, MoeLayerOp, ContractOp, ChunkDecaysOp,
                              ChunkScanOp, ReverseOp, UnaryOp>(op);
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
        outs[k] = zerosLike(b, loc, bwd.getArgument(k));
    mlir::func::ReturnOp::create(b, loc, outs);
    return mlir::success();
  }

  mlir::LogicalResult differentiate(mlir::func::FuncOp f) {
    if (auto moe = returnedMoe(f))
      return differentiateMoe(f, moe);
    if (f.getNumResults() != 1 || f.getBody().getBlocks().size() != 1)
      return f.emitOpError()
             << "autodiff needs a function with one block and one result "
                "(or one returning the (y, aux_loss) of an einstruct.moe_layer)";
    for (mlir::Type t : llvm::concat<const mlir::Type>(f.getArgumentTypes(),
                                                      f.getResultTypes()))
      if (!mlir::isa<mlir::RankedTensorType>(t))
        return f.emitOpError() << "autodiff needs ranked tensor arguments "
                                  "and result, got "
                               << t;
    // @f_backward(args..., dy) -> (dargs...), constant arguments left out.
    llvm::SmallVector<unsigned> wrt;
    llvm::SmallVector<mlir::Type> gradTypes;
    for (unsigned k = 0; k < f.getNumArguments(); ++k)
      if (!f.getArgAttr(k, kConstantArg)) {
        wrt.push_back(k);
        gradTypes.push_back(f.getArgument(k).getType());
      }
    mlir::OpBuilder b(f);
    b.setInsertionPointAfter(f);
    mlir::Location loc = f.getLoc();
    llvm::SmallVector<mlir::Type> args(f.getArgumentTypes());
    args.push_back(f.getResultTypes()[0]);
    auto bwd =
        mlir::func::FuncOp::create(b, loc, (f.getSymName() + "_backward").str(),
                                   b.getFunctionType(args, gradTypes));
    if (auto c = f->getAttr("llvm.emit_c_interface"))
      bwd->setAttr("llvm.emit_c_interface", c);
    // The backward takes the same constants (M2's DFT matrices).
    for (unsigned k = 0; k < f.getNumArguments(); ++k)
      if (auto c = f.getArgAttr(k, kConstantArg))
        bwd.setArgAttr(k, kConstantArg, c);
    mlir::Block *body = bwd.addEntryBlock();
    b.setInsertionPointToStart(body);
    // The forward values the rules read, recomputed (unread ones are
    // erased at the end).
    mlir::IRMapping forward;
    for (unsigned k = 0; k < f.getNumArguments(); ++k)
      forward.map(f.getArgument(k), bwd.getArgument(k));
    llvm::SmallVector<mlir::Operation *> ops;
    llvm::DenseMap<mlir::Operation *, mlir::Operation *> original; // of a clone
    for (mlir::Operation &op : f.getBody().front().without_terminator()) {
      ops.push_back(&op);
      original[b.clone(op, forward)] = &op;
    }
    // Values that depend on a non-constant argument: only they receive
    // cotangents (the DFT matrices of a convolution need none).
    llvm::DenseSet<Value> active;
    for (unsigned k : wrt)
      active.insert(f.getArgument(k));
    // A tensor.dim (an extent, read to shape a tensor of ones, say) carries
    // none.
    for (mlir::Operation *op : ops)
      if (!mlir::isa<mlir::tensor::DimOp>(op) &&
          llvm::any_of(op->getOperands(),
                       [&](Value v) { return active.contains(v); }))
        active.insert(op->getResults().begin(), op->getResults().end());
    // Reverse sweep: each op's operands receive its results' cotangents.
    llvm::DenseMap<Value, Value> grad;
    auto ret = mlir::cast<mlir::func::ReturnOp>(
        f.getBody().front().getTerminator());
    grad[ret.getOperand(0)] = bwd.getArguments().back();
    auto accumulate = [&](Value v, Value g) {
      if (active.contains(v))
        grad[v] = addOrFirst(b, loc, grad.lookup(v), g);
    };
    for (mlir::Operation *op : llvm::reverse(ops)) {
      bool needed = llvm::any_of(op->getResults(),
                                 [&](Value r) { return grad.count(r); });
      if (!needed)
        continue;
      if (mlir::failed(backpropagate(b, op, forward, grad, active, accumulate)))
        return mlir::failure();
    }
    llvm::SmallVector<Value> outs;
    for (unsigned k : wrt) {
      Value g = grad.lookup(f.getArgument(k));
      outs.push_back(g ? g : zerosLike(b, loc, bwd.getArgument(k)));
    }
    mlir::func::ReturnOp::create(b, loc, outs);
    eraseDead(*body, [&](mlir::Operation *op) { original.erase(op); });
    if (saveResiduals)
      addSavingPair(f, bwd, original);
    return mlir::success();
  }

  // @f_saving(args...) -> (y, residuals...) and @f_backward_saved(args...,
  // residuals..., dy) -> (dargs...), from f and its backward `bwd`, whose
  // forward clones `original` maps to f's ops: of the clones' values the
  // sweep reads, residualsToSave picks what to keep and what to recompute.
  static void addSavingPair(
      mlir::func::FuncOp f, mlir::func::FuncOp bwd,
      const llvm::DenseMap<mlir::Operation *, mlir::Operation *> &original) {
    llvm::SmallVector<mlir::Operation *> clones;
    for (mlir::Operation &op : bwd.getBody().front())
      if (original.count(&op))
        clones.push_back(&op);
    llvm::SetVector<Value> residuals = residualsToSave(clones, [&](Value r) {
      return llvm::any_of(
          r.getUsers(), [&](mlir::Operation *u) { return !original.count(u); });
    });
    mlir::OpBuilder b(bwd);
    b.setInsertionPointAfter(bwd);
    mlir::IRMapping toSaving;
    auto saving = mlir::cast<mlir::func::FuncOp>(b.clone(*f, toSaving));
    saving.setSymName((f.getSymName() + "_saving").str());
    auto ret = mlir::cast<mlir::func::ReturnOp>(
        saving.getBody().front().getTerminator());
    llvm::SmallVector<Value> outs(ret.getOperands());
    for (Value r : residuals) {
      mlir::Operation *o = original.lookup(r.getDefiningOp());
      outs.push_back(toSaving.lookup(
          o->getResult(mlir::cast<mlir::OpResult>(r).getResultNumber())));
    }
    ret->setOperands(outs);
    saving.setType(b.getFunctionType(saving.getArgumentTypes(),
                                     mlir::ValueRange(outs).getTypes()));
    for (unsigned k = 1; k < outs.size(); ++k)
      saving.setResultAttr(k, kResidualAttr, b.getUnitAttr());
    mlir::IRMapping toSaved;
    auto saved = mlir::cast<mlir::func::FuncOp>(b.clone(*bwd, toSaved));
    saved.setSymName((f.getSymName() + "_backward_saved").str());
    const unsigned at = bwd.getNumArguments() - 1; // before dy
    for (auto [k, r] : llvm::enumerate(residuals)) {
      (void)saved.insertArgument(
          at + unsigned(k), r.getType(),
          b.getDictionaryAttr(b.getNamedAttr(kResidualAttr, b.getUnitAttr())),
          r.getLoc());
      toSaved.lookup(r).replaceAllUsesWith(saved.getArgument(at + unsigned(k)));
    }
    // Else a layer would be recomputed for nothing but its batch extent.
    do
      eraseDead(saved.getBody().front());
    while (readExtentsOffOperands(saved));
  }

  // Erases the ops nothing reads, last first (`erasing` told of each).
  static void
  eraseDead(mlir::Block &body,
            llvm::function_ref<void(mlir::Operation *)> erasing = {}) {
    for (mlir::Operation &op :
         llvm::make_early_inc_range(llvm::reverse(body.getOperations())))
      if (mlir::isOpTriviallyDead(&op)) {
        if (erasing)
          erasing(&op);
        op.erase();
      }
  }

  // Adds the cotangents of `op`'s operands from those of its results
  // (`grad`, missing ones zero): the vector–Jacobian product of each op the
  // forward functions hold.
  static mlir::LogicalResult
  backpropagate(mlir::OpBuilder &b, mlir::Operation *op,
                mlir::IRMapping &forward, llvm::DenseMap<Value, Value> &grad,
                const llvm::DenseSet<Value> &active,
                llvm::function_ref<void(Value, Value)> accumulate) {
    mlir::Location loc = op->getLoc();
    auto cotangent = [&](Value r) {
      Value g = grad.lookup(r);
      return g ? g : zerosLike(b, loc, forward.lookup(r));
    };
    auto fwd = [&](Value v) { return forward.lookupOrDefault(v); };
    if (auto t = mlir::dyn_cast<LayerOp>(op)) {
      llvm::SmallVector<Value> weights;
      for (Value w : t.getWeights())
        weights.push_back(fwd(w));
      auto g = layerGradients(b, loc, t, fwd(t.getInput()), weights,
                              cotangent(t.getResult()));
      if (mlir::failed(g))
        return mlir::failure();
      accumulate(t.getInput(), g->dx);
      for (auto [w, dw] : llvm::zip(t.getWeights(), g->dw))
        accumulate(w, dw);
      return mlir::success();
    }
    if (auto c = mlir::dyn_cast<ContractOp>(op)) {
      // "l,r->o": dl = "o,r->l" and dr = "l,o->r" (the verifier keeps every
      // operand index in the result or the other operand).
      auto spec = parseEinsumLetters(c.getSpec().str());
      const std::string &l = spec->input, &r = spec->weights[0],
                        &o = spec->output;
      Value dout = cotangent(c.getResult());
      if (active.contains(c.getLhs()))
        accumulate(c.getLhs(),
                   ContractOp::create(b, loc, c.getLhs().getType(), dout,
                                      fwd(c.getRhs()),
                                      b.getStringAttr(o + "," + r + "->" + l)));
      if (active.contains(c.getRhs()))
        accumulate(c.getRhs(),
                   ContractOp::create(b, loc, c.getRhs().getType(),
                                      fwd(c.getLhs()), dout,
                                      b.getStringAttr(l + "," + o + "->" + r)));
      return mlir::success();
    }
    if (auto d = mlir::dyn_cast<ChunkDecaysOp>(op)) {
      // One at a time: the zeros they may create come in a fixed order
      // (function arguments are evaluated in any).
      Value dWithin = cotangent(d.getWithin());
      Value dToEnd = cotangent(d.getToEnd());
      Value dFromStart = cotangent(d.getFromStart());
      Value dChunk = cotangent(d.getChunk());
      accumulate(d.getA(), ChunkDecaysGradOp::create(
                               b, loc, d.getA().getType(), fwd(d.getA()),
                               dWithin, dToEnd, dFromStart, dChunk));
      return mlir::success();
    }
    if (auto sc = mlir::dyn_cast<ChunkScanOp>(op)) {
      auto g = ChunkScanGradOp::create(
          b, loc, sc.getStates().getType(), sc.getDecay().getType(),
          fwd(sc.getStates()), fwd(sc.getDecay()),
          cotangent(sc.getEntering()));
      accumulate(sc.getStates(), g.getDstates());
      accumulate(sc.getDecay(), g.getDdecay());
      return mlir::success();
    }
    if (auto u = mlir::dyn_cast<UnaryOp>(op)) {
      // dx = factor · dy ⊙ g(x), g = f' (UnaryFunctions.h).
      auto d = unaryDerivative(u);
      if (!d)
        return op->emitOpError() << "autodiff has no second derivative: \""
                                 << u.getKind() << "\" is itself one";
      Value g = cotangent(u.getResult());
      if (!d->kind.empty()) {
        const int64_t rank =
            mlir::cast<mlir::RankedTensorType>(g.getType()).getRank();
        std::string letters;
        for (int64_t k = 0; k < rank; ++k)
          letters += char('a' + k);
        Value slope = UnaryOp::create(b, loc, fwd(u.getInput()), d->kind,
                                      d->scale, d->shift);
        g = ContractOp::create(
            b, loc, g.getType(), g, slope,
            b.getStringAttr(letters + "," + letters + "->" + letters));
      }
      if (d->factor != 1)
        g = UnaryOp::create(b, loc, g, "identity", d->factor);
      accumulate(u.getInput(), g);
      return mlir::success();
    }
    if (auto add = mlir::dyn_cast<mlir::arith::AddFOp>(op)) {
      accumulate(add.getLhs(), cotangent(add.getResult()));
      accumulate(add.getRhs(), cotangent(add.getResult()));
      return mlir::success();
    }
    if (auto e = mlir::dyn_cast<mlir::tensor::ExpandShapeOp>(op)) {
      accumulate(e.getSrc(), mlir::tensor::CollapseShapeOp::create(
                                 b, loc, e.getSrcType(), cotangent(e.getResult()),
                                 e.getReassociationIndices()));
      return mlir::success();
    }
    if (auto c = mlir::dyn_cast<mlir::tensor::CollapseShapeOp>(op)) {
      accumulate(c.getSrc(), mlir::tensor::ExpandShapeOp::create(
                                 b, loc, c.getSrcType(), cotangent(c.getResult()),
                                 c.getReassociationIndices()));
      return mlir::success();
    }
    if (auto r = mlir::dyn_cast<ReverseOp>(op)) {
      accumulate(
          r.getInput(),
          ReverseOp::create(b, loc, cotangent(r.getResult()), r.getDim()));
      return mlir::success();
    }
    // A static window and a zero pad: each the other's adjoint.
    if (auto e = mlir::dyn_cast<mlir::tensor::ExtractSliceOp>(op)) {
      if (mlir::failed(checkStaticSlice(e)))
        return mlir::failure();
      auto src = e.getSourceType();
      llvm::SmallVector<int64_t> low, high;
      for (int64_t k = 0; k < src.getRank(); ++k) {
        const int64_t at = e.getStaticOffsets()[size_t(k)];
        low.push_back(at);
        high.push_back(src.isDynamicDim(k)
                           ? 0
                           : src.getDimSize(k) - at -
                                 e.getResultType().getDimSize(k));
      }
      accumulate(e.getSource(),
                 zeroPad(b, loc, cotangent(e.getResult()), low, high));
      return mlir::success();
    }
    if (auto p = mlir::dyn_cast<mlir::tensor::PadOp>(op)) {
      if (mlir::failed(checkZeroPad(p)))
        return mlir::failure();
      llvm::SmallVector<int64_t> sizes(p.getSourceType().getShape());
      accumulate(p.getSource(), staticSlice(b, loc, cotangent(p.getResult()),
                                            p.getStaticLow(), sizes));
      return mlir::success();
    }
    if (mlir::isa<MoeLayerOp>(op))
      return op->emitOpError()
             << "autodiff differentiates a moe_layer only as a function "
                "returning its (y, aux_loss) as they are";
    return op->emitOpError()
           << "autodiff has no gradient rule for this op (it knows "
              "einstruct.layer, einstruct.contract, einstruct.chunk_decays, "
              "einstruct.chunk_scan, einstruct.reverse, einstruct.unary, "
              "arith.addf, tensor "
              "reshapes, static slices and pads)";
  }
};

} // namespace
} // namespace einstruct
