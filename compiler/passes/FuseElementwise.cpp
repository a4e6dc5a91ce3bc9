// --einstruct-fuse-elementwise: chains of elementwise generics as one
// (see Passes.td).
#include "Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace einstruct {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "Passes.h.inc"

namespace {

bool elementwise(mlir::linalg::GenericOp g) {
  return g && g.getNumLoops() == g.getNumParallelLoops();
}

// Fuse only one-use elementwise producers into elementwise consumers that
// read them at the same points: no work is repeated and no contraction
// gains a payload its micro-kernel does not recognise.
bool fusable(mlir::OpOperand *operand) {
  auto producer = operand->get().getDefiningOp<mlir::linalg::GenericOp>();
  auto consumer = mlir::dyn_cast<mlir::linalg::GenericOp>(operand->getOwner());
  return elementwise(producer) && elementwise(consumer) &&
         operand->get().hasOneUse() &&
         consumer.getMatchingIndexingMap(operand).isPermutation();
}

struct FuseElementwisePass : impl::FuseElementwiseBase<FuseElementwisePass> {
  using FuseElementwiseBase::FuseElementwiseBase;

  void runOnOperation() override {
    mlir::RewritePatternSet patterns(&getContext());
    mlir::linalg::populateElementwiseOpsFusionPatterns(patterns, fusable);
    // Not converging within the driver's rounds leaves valid IR with some
    // chains unmerged: slower, not wrong, so it is no failure.
    (void)mlir::applyPatternsGreedily(getOperation(), std::move(patterns));
  }
};

} // namespace
} // namespace einstruct
