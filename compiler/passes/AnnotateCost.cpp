// --einstruct-annotate-cost: the structure model's exact costs as attributes.
#include "LayerOfOp.h"
#include "Passes.h"
#include "dialects/EinstructDialect.h"
#include "search/Layer.h"

#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_ANNOTATECOST
#include "Passes.h.inc"

namespace {

struct AnnotateCostPass : impl::AnnotateCostBase<AnnotateCostPass> {
  void runOnOperation() override {
    mlir::Builder b(&getContext());
    auto walk = getOperation()->walk([&](mlir::Operation *op) {
      if (auto layer = mlir::dyn_cast<LayerOp>(op))
        return annotate(layer, b);
      if (auto moe = mlir::dyn_cast<MoeLayerOp>(op))
        return annotate(moe, b);
      if (auto contract = mlir::dyn_cast<ContractOp>(op))
        annotate(contract, b);
      return mlir::WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  // The structure model's analysis of one layer, as attributes.
  template <class Op> mlir::WalkResult annotate(Op op, mlir::Builder &b) {
    auto layer = layerOfOp(op);
    if (!layer) {
      op->emitOpError() << layer.error();
      return mlir::WalkResult::interrupt();
    }
    auto a = analyze(*layer);
    if (!a) {
      op->emitOpError() << a.error();
      return mlir::WalkResult::interrupt();
    }
    op->setAttr("einstruct.family", b.getStringAttr(a->name));
    op->setAttr("einstruct.params", b.getI64IntegerAttr(a->params));
    op->setAttr("einstruct.flops", b.getI64IntegerAttr(a->flops));
    op->setAttr("einstruct.rank_bound", b.getI64IntegerAttr(a->rankBound));
    if (a->metrics) {
      op->setAttr("einstruct.omega", b.getF64FloatAttr(a->metrics->omega));
      op->setAttr("einstruct.psi", b.getF64FloatAttr(a->metrics->psi));
      op->setAttr("einstruct.nu", b.getF64FloatAttr(a->metrics->nu));
    }
    return mlir::WalkResult::advance();
  }

  void annotate(ContractOp op, mlir::Builder &b) {
    // Multiply-adds = product of the extent of every distinct index.
    auto t = parseEinsumLetters(op.getSpec().str());
    if (!t)
      return; // the verifier has already rejected it
    std::map<char, int64_t> extent;
    auto record = [&](mlir::Value v, const std::string &letters) {
      auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
      for (size_t k = 0; k < letters.size(); ++k)
        extent[letters[k]] = type.getDimSize(k);
    };
    record(op.getLhs(), t->input);
    record(op.getRhs(), t->weights[0]);
    int64_t flops = 1;
    for (auto [c, d] : extent) {
      if (mlir::ShapedType::isDynamic(d) ||
          __builtin_mul_overflow(flops, d, &flops))
        return; // unknown or unrepresentable: leave unannotated
    }
    op->setAttr("einstruct.flops", b.getI64IntegerAttr(flops));
  }
};

} // namespace
} // namespace einstruct
