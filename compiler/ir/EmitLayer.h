// Builds the einstruct IR of a layer: one func.func taking x and the weights,
// one einstruct.layer per term, summed with arith.addf.
#pragma once
#include "search/Layer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"

namespace einstruct {

void loadDialects(mlir::MLIRContext &ctx);

// Appends `func.func @name` for `layer` to `module`.
void emitLayer(mlir::ModuleOp module, const Layer &layer,
               const std::string &name);

// Appends `func.func @name(x, router, W1, W2) -> (y, aux_loss)` holding one
// einstruct.moe_layer for a BTT-MoE layer (layer.experts > 0): the routed
// layer as a whole, where emitLayer gives only its all-experts einsum.
void emitMoeLayer(mlir::ModuleOp module, const Layer &layer,
                  const std::string &name);

} // namespace einstruct
