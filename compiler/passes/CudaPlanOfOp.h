// #einstruct.cuda_plan to and from the planner's LayerPlan: what
// --einstruct-plan-cuda attaches, and what the kernels are emitted from, so
// that a plan edited in the IR is the plan the library runs.
#pragma once
#include "compiler/cuda/LayerSources.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace einstruct {

// `plan` as #einstruct.cuda_plan.
Result<CudaPlanAttr> cudaPlanAttr(mlir::MLIRContext *ctx,
                                  const LayerPlan &plan);

// The plan `attr` records for `layer`: the planner's for `target`, whose
// arch and dtype must be the attribute's, with the attribute's tiles in
// place of the planner's (withTiles). An error names the field that does
// not fit the layer.
Result<LayerPlan> layerPlanOf(const Layer &layer, CudaPlanAttr attr,
                              const CudaTarget &target);

// The plan of layer function `f` computing `layer`, from its ops'
// #einstruct.cuda_plan: one op's for a two-factor layer, and for a sum of
// one-weight terms (DYAD) every op's, each naming cuBLAS.
Result<LayerPlan> functionPlan(mlir::func::FuncOp f, const Layer &layer,
                               const CudaTarget &target);

} // namespace einstruct
