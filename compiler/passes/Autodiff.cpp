// --einstruct-autodiff: backward functions as einsum contractions.
#include "ContractionChain.h"
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

Value addOrFirst(mlir::OpBuilder &b, mlir::Location loc, Value acc, Value v) {
  return acc ? mlir::arith::AddFOp::create(b, loc, acc, v).getResult() : v;
}

struct AutodiffPass : impl::AutodiffBase<AutodiffPass> {
  void runOnOperation() override {
    llvm::SmallVector<mlir::func::FuncOp> funcs;
    getOperation().walk([&](mlir::func::FuncOp f) {
      bool hasLayer = false;
      f.walk([&](LayerOp) { hasLayer = true; });
      if (hasLayer && !f.getSymName().ends_with("_backward"))
        funcs.push_back(f);
    });
    for (auto f : funcs)
      if (mlir::failed(differentiate(f))) {
        signalPassFailure();
        return;
      }
  }

  mlir::LogicalResult differentiate(mlir::func::FuncOp f) {
    auto fail = [&]() {
      return f.emitOpError()
             << "autodiff needs a function that returns a sum of "
                "einstruct.layer ops applied to its first argument, with "
                "weights taken from its other arguments";
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
    auto xType = mlir::cast<mlir::RankedTensorType>(x.getType());
    Value dx;
    llvm::SmallVector<Value> dw(f.getNumArguments());
    for (LayerOp t : terms) {
      EinsumTerm term;
      std::string error;
      if (!termOf(t, term, error))
        return t.emitOpError() << error;
      llvm::SmallVector<Value> weights;
      for (Value w : t.getWeights())
        weights.push_back(
            bwd.getArgument(mlir::cast<mlir::BlockArgument>(w).getArgNumber()));
      // dx: the same einsum read backwards, x and y swapped.
      std::string spec = term.output;
      for (auto &w : term.weights)
        spec += "," + w;
      spec += "->" + term.input;
      auto gradIn = LayerOp::create(
          b, loc, xType, dy, weights, b.getStringAttr(spec), t.getSizes(),
          t.getDOutAttr(), t.getDInAttr(), nullptr, nullptr, nullptr);
      dx = addOrFirst(b, loc, dx, gradIn);
      // dWi: contract x and dy over the batch with every other weight.
      char n = batchLetter(term);
      Value xs = collapseBatch(b, loc, x);
      xs = fitFeatures(b, loc, xs, term.inDim());
      xs = splitFeatures(b, loc, xs, term.input, term.sizes);
      Value dys = collapseBatch(b, loc, dy);
      dys = fitFeatures(b, loc, dys, term.outDim());
      dys = splitFeatures(b, loc, dys, term.output, term.sizes);
      std::map<char, int64_t> sizes = term.sizes;
      sizes[n] = mlir::cast<mlir::RankedTensorType>(xs.getType()).getDimSize(0);
      std::string nx = std::string(1, n) + term.input;
      std::string ny = std::string(1, n) + term.output;
      for (size_t i = 0; i < term.weights.size(); ++i) {
        // Start from x or from dy, whichever chain is cheaper, and order the
        // other operands by exact cost (at a nominal batch of 1024).
        ChainOperand start[2] = {{xs, nx}, {dys, ny}};
        int bestStart = -1;
        int64_t bestFlops = 0;
        std::vector<ChainOperand> bestOrder;
        for (int s = 0; s < 2; ++s) {
          EinsumTerm g;
          g.input = start[s].letters;
          std::vector<ChainOperand> ops = {start[1 - s]};
          g.weights.push_back(start[1 - s].letters);
          for (size_t j = 0; j < term.weights.size(); ++j)
            if (j != i) {
              g.weights.push_back(term.weights[j]);
              ops.push_back({weights[j], term.weights[j]});
            }
          g.output = term.weights[i];
          g.sizes = term.sizes;
          g.sizes[n] = 1024;
          auto cost = termCost(g);
          if (!cost)
            return t.emitOpError() << cost.error();
          if (bestStart >= 0 && cost->flops >= bestFlops)
            continue;
          bestStart = s;
          bestFlops = cost->flops;
          bestOrder.clear();
          for (int k : cost->order)
            bestOrder.push_back(ops[size_t(k)]);
        }
        Value grad = contractChain(b, loc, start[bestStart], bestOrder,
                                   term.weights[i], sizes);
        unsigned argNo =
            mlir::cast<mlir::BlockArgument>(t.getWeights()[i]).getArgNumber();
        dw[argNo] = addOrFirst(b, loc, dw[argNo], grad);
      }
    }
    llvm::SmallVector<Value> outs = {dx};
    for (unsigned k = 1; k < f.getNumArguments(); ++k) {
      if (!dw[k]) {
        auto type = mlir::cast<mlir::RankedTensorType>(f.getArgumentTypes()[k]);
        Value empty = mlir::tensor::EmptyOp::create(b, loc, type.getShape(),
                                                    type.getElementType());
        Value zero = mlir::arith::ConstantOp::create(
            b, loc, b.getZeroAttr(type.getElementType()));
        dw[k] = mlir::linalg::FillOp::create(b, loc, zero, empty).getResult(0);
      }
      outs.push_back(dw[k]);
    }
    mlir::func::ReturnOp::create(b, loc, outs);
    return mlir::success();
  }
};

} // namespace
} // namespace einstruct
