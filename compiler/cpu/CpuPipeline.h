// The CPU lowering: einstruct → linalg → bufferized memrefs → loops → LLVM
// dialect, all through MLIR's own passes.
#pragma once
#include "VectorUnits.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"

namespace einstruct {

// Registers the dialects and the external bufferization/LLVM-translation
// models the pipeline needs.
void registerCpuPipelineDialects(mlir::DialectRegistry &registry);

// Appends the whole pipeline to `pm` (anchored on the module).
void buildCpuPipeline(mlir::OpPassManager &pm, VectorUnits units = kAvx2);

// Registers it as `einstruct-lower-to-llvm` for einstruct-opt (kAvx2).
void registerCpuPipeline();

} // namespace einstruct
