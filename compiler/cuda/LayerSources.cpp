#include "LayerSources.h"
#include "GemmEmitter.h"

namespace einstruct {

Result<LayerSources> layerSources(const Layer &layer, const CudaTarget &target,
                                  const std::string &name) {
  LayerSources out;
  Result<CudaSources> src = Error{""};
  if (isGemmLayer(layer)) {
    auto plan = planGemm(layer, target);
    if (!plan)
      return Error{plan.error()};
    src = emitGemmCuda(*plan, name);
    out.cublas = true;
    out.why = "cuBLAS: " + plan->why;
  } else {
    auto plan = planCuda(layer, target);
    if (!plan)
      return Error{plan.error()};
    src = emitCuda(*plan, name);
    out.why = plan->tileWhy;
  }
  if (!src)
    return Error{src.error()};
  out.sources = std::move(*src);
  return out;
}

} // namespace einstruct
