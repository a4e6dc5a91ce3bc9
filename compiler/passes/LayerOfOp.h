// The search model's Layer (search/Layer.h) of one einstruct.layer or
// einstruct.moe_layer op, or of a layer function: what the passes that cost
// or plan a layer, and the compile command reading IR back, take.
#pragma once
#include "dialects/EinstructDialect.h"
#include "search/Layer.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace einstruct {

// The op's one-term Layer (with θ, and experts for BTT-MoE), or an error
// naming what in its attributes is wrong.
Result<Layer> layerOfOp(LayerOp op);
Result<Layer> layerOfOp(MoeLayerOp op);
// The layer whose gradients the op computes (the same attributes).
Result<Layer> layerOfOp(MoeLayerGradOp op);

// The layer a function computes, when it is a layer function (what
// emitLayer and emitMoeLayer write, and --einstruct-select-structure keeps):
// einstruct.layer ops summed by arith.addf, or one einstruct.moe_layer,
// returned. None for any other function.
std::optional<Result<Layer>> layerOfFunction(mlir::func::FuncOp f);

} // namespace einstruct
