// The gradients of one einstruct.layer term, as einsum contractions: shared
// by autodiff (a layer function's backward) and the BTT-MoE lowering (each
// expert's rank-1 layer inside its loop).
#pragma once
#include "dialects/EinstructDialect.h"

#include "mlir/IR/Builders.h"

namespace einstruct {

struct LayerGradients {
  mlir::Value dx;                     // [batch, d_in], like x
  llvm::SmallVector<mlir::Value> dw; // one per weight, like the weight
};

// Gradients of <dy, layer(x, weights)> for the term of `layer` (its spec,
// sizes, d_in and d_out; its operands are not used): dx is the einsum read
// backwards, each dW contracts x and dy over the batch with the other
// weights, starting from x or dy, whichever chain costs less.
mlir::FailureOr<LayerGradients>
layerGradients(mlir::OpBuilder &b, mlir::Location loc, LayerOp layer,
               mlir::Value x, mlir::ValueRange weights, mlir::Value dy);

} // namespace einstruct
