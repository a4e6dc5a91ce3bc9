// Builds the einstruct IR of a layer: one func.func taking x and the weights,
// one einstruct.layer per term, summed with arith.addf.
#pragma once
#include "search/Layer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"

namespace einstruct {

void loadDialects(mlir::MLIRContext &ctx);

// Appends `func.func @name` for `layer` to `module`.
void emitLayer(mlir::ModuleOp module, const Layer &layer,
               const std::string &name);

// Appends `func.func @name(x, router, W1, W2) -> (y, aux_loss)` holding one
// einstruct.moe_layer for a BTT-MoE layer (layer.experts > 0): the routed
// layer as a whole, where emitLayer gives only its all-experts einsum. With
// `withLogits` the router logits [batch, E] are a third result (the same op
// --einstruct-lower-moe builds, so CSE computes them once).
void emitMoeLayer(mlir::ModuleOp module, const Layer &layer,
                  const std::string &name, bool withLogits = false);

// A module of `layers`, one function each, named by `names` (default:
// @layer for one, else @layer0, @layer1, ...): a BTT-MoE as emitMoeLayer's,
// the others as emitLayer's. Null if it does not verify (an internal error).
mlir::OwningOpRef<mlir::ModuleOp>
layerModule(mlir::MLIRContext &ctx, const std::vector<Layer> &layers,
            const std::vector<std::string> &names = {});

// logits[batch, experts] = x · router as an einstruct.layer "i,io->o".
mlir::Value routerLogits(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                         mlir::Value router, int64_t dIn, int64_t experts);

} // namespace einstruct
