// --einstruct-annotate-cost: the structure model's exact costs as attributes.
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
      if (auto contract = mlir::dyn_cast<ContractOp>(op))
        annotate(contract, b);
      return mlir::WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  mlir::WalkResult annotate(LayerOp op, mlir::Builder &b) {
    EinsumTerm term;
    std::string error;
    if (!termOf(op, term, error)) {
      op.emitOpError() << error;
      return mlir::WalkResult::interrupt();
    }
    auto layer = layerFromTerms({term}, op.getDInAttr().getInt(),
                                op.getDOutAttr().getInt());
    if (!layer) {
      op.emitOpError() << layer.error();
      return mlir::WalkResult::interrupt();
    }
    if (auto theta = op.getTheta()) {
      Theta t;
      for (int c = 0; c < kNumClasses; ++c)
        t[c] = (*theta)[c];
      layer->theta = t;
    }
    if (op.getExperts() && layer->terms.size() == 1 &&
        classify(layer->terms[0])) {
      layer->experts = op.getExpertsAttr().getInt();
      layer->topK = op.getTopKAttr().getInt();
    }
    auto a = analyze(*layer);
    if (!a) {
      op.emitOpError() << a.error();
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
