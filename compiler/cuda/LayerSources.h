// The one place that decides how a layer runs on the GPU and writes its
// sources: one-weight terms (dense, block-diagonal, DYAD) as cuBLAS calls
// (GemmPlan), two-factor layers as the fused kernels (CudaPlan). Used by
// `einstruct compile` and by the runtime's CudaLayer alike.
#pragma once
#include "compiler/cuda/CudaEmitter.h"

namespace einstruct {

struct LayerSources {
  CudaSources sources;
  bool cublas = false; // the library links cuBLAS
  std::string why;     // how it was planned, for messages
};

// Errors are the planner's or the emitter's, unprefixed.
Result<LayerSources> layerSources(const Layer &layer, const CudaTarget &target,
                                  const std::string &name);

} // namespace einstruct
