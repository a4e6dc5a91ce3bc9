// --einstruct-fresh-inits: linalg ops whose payload never reads an init get
// tensor.empty there, so bufferization need not copy the operand it was.
#include "Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace einstruct {
#define GEN_PASS_DEF_FRESHINITS
#include "Passes.h.inc"

namespace {

struct FreshInitsPass : impl::FreshInitsBase<FreshInitsPass> {
  using FreshInitsBase::FreshInitsBase;

  void runOnOperation() override {
    getOperation()->walk([](mlir::linalg::GenericOp op) {
      if (!op.hasPureTensorSemantics())
        return;
      for (mlir::OpOperand &init : op.getDpsInitsMutable()) {
        if (op.payloadUsesValueFromOperand(&init) ||
            init.get().getDefiningOp<mlir::tensor::EmptyOp>())
          continue;
        mlir::OpBuilder b(op);
        auto type = mlir::cast<mlir::RankedTensorType>(init.get().getType());
        init.set(mlir::tensor::EmptyOp::create(
            b, op.getLoc(),
            mlir::tensor::getMixedSizes(b, op.getLoc(), init.get()),
            type.getElementType()));
      }
    });
  }
};

} // namespace
} // namespace einstruct
