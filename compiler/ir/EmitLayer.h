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

} // namespace einstruct
