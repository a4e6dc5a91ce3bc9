// The one place that decides how a layer runs on the GPU and writes its
// sources: one-weight terms (dense, block-diagonal, DYAD) as cuBLAS calls
// (GemmPlan), two-factor layers as the fused kernels (CudaPlan). The plan
// reaches the IR as #einstruct.cuda_plan and comes back from it
// (compiler/passes/CudaPipeline.h) before its sources are emitted.
#pragma once
#include "compiler/cuda/CudaEmitter.h"
#include "compiler/cuda/GemmPlan.h"

#include <variant>

namespace einstruct {

// How a layer runs: cuBLAS calls or the fused kernels, as planned once and
// then emitted under any number of names (`compile --prebuild` writes the
// user's library and the runtime's from one plan).
struct LayerPlan {
  std::variant<GemmPlan, CudaPlan> plan;
  bool cublas() const { return plan.index() == 0; }
  const Layer &layer() const;
  Layer &layer();
  const CudaTarget &target() const;
  std::string why() const; // how it was planned, for messages
};

struct LayerSources {
  CudaSources sources;
  bool cublas = false; // the library links cuBLAS
  std::string why;     // how it was planned, for messages
};

// Errors are the planner's, unprefixed.
Result<LayerPlan> planLayer(const Layer &layer, const CudaTarget &target);
// The plan's sources with their symbols named `name`; errors are the
// emitter's, unprefixed.
Result<LayerSources> layerSources(const LayerPlan &plan,
                                  const std::string &name);

} // namespace einstruct
