// The one path from layers to CUDA kernels, shared by `einstruct compile`
// (a spec, a model or an IR file), --prebuild, the runtime's CUDA layers and
// einstruct-translate: the layers' einstruct IR, --einstruct-plan-cuda, and
// each layer function's plan read back from its #einstruct.cuda_plan
// (CudaPlanOfOp.h), whose sources compiler/cuda emits.
#pragma once
#include "compiler/cuda/ChainPlan.h"
#include "compiler/cuda/LayerSources.h"
#include "compiler/passes/Passes.h"
#include "search/Mixer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace einstruct {

// --einstruct-plan-cuda's options for `target`.
PlanCudaOptions planCudaOptions(const CudaTarget &target);

// `layers` as einstruct IR (functions named `names`, else layerModule's
// names), planned for `target`. An error is the first diagnostic, after
// "@NAME: " when there are several layers.
Result<mlir::OwningOpRef<mlir::ModuleOp>>
plannedLayers(mlir::MLIRContext &ctx, const std::vector<Layer> &layers,
              const std::vector<std::string> &names, const CudaTarget &target);

// One layer along that path: its plan as the planned IR records it.
Result<LayerPlan> planLayerThroughIr(const Layer &layer,
                                     const CudaTarget &target);

// The library of one layer function of a planned module.
struct LayerLibrary {
  std::string function; // the function's name: the files' and symbols'
  LayerPlan plan;       // as its #einstruct.cuda_plan records it
  LayerSources sources;
  std::string cudaPlan; // the attribute as text (the first, for a sum)
};

// The libraries of `module`'s layer functions, in order; `skipped` gets the
// other functions' names. Each plan is for `target` (whose arch and dtype
// the attributes must have), or, with none, for its attribute's arch and
// dtype with that arch's defaults. Errors start with "@FUNCTION: ".
Result<std::vector<LayerLibrary>>
layerLibraries(mlir::ModuleOp module, const CudaTarget *target,
               std::vector<std::string> &skipped);

// The library of one contraction-chain function (a mixer's forward or
// backward; ChainOfFunction.h) of a planned module.
struct ChainLibrary {
  std::string function;
  ChainPlan plan;
  CudaSources sources;
};

// The libraries of `module`'s chain functions, in order; with bf16Boundary
// their inputs and outputs are bfloat16 (float32 inside). An error is the
// first diagnostic, after "@FUNCTION: ".
Result<std::vector<ChainLibrary>> chainLibraries(mlir::ModuleOp module,
                                                 bool bf16Boundary = false);

// Mixer `plan` as @name and @name_backward (--einstruct-autodiff), planned
// for the GPU (--einstruct-plan-contractions for a block's projections,
// then --einstruct-plan-cuda); m2-conv and monarch-seq take all d_model
// channels in one call.
Result<mlir::OwningOpRef<mlir::ModuleOp>> plannedMixer(mlir::MLIRContext &ctx,
                                                       const MixerPlan &plan,
                                                       const std::string &name);

} // namespace einstruct
