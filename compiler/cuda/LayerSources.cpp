#include "LayerSources.h"
#include "GemmEmitter.h"

namespace einstruct {

const Layer &LayerPlan::layer() const {
  return cublas() ? std::get<GemmPlan>(plan).layer
                  : std::get<CudaPlan>(plan).layer;
}

Layer &LayerPlan::layer() {
  return cublas() ? std::get<GemmPlan>(plan).layer
                  : std::get<CudaPlan>(plan).layer;
}

const CudaTarget &LayerPlan::target() const {
  return cublas() ? std::get<GemmPlan>(plan).target
                  : std::get<CudaPlan>(plan).target;
}

std::string LayerPlan::why() const {
  return cublas() ? "cuBLAS: " + std::get<GemmPlan>(plan).why
                  : std::get<CudaPlan>(plan).tileWhy;
}

Result<LayerPlan> planLayer(const Layer &layer, const CudaTarget &target) {
  if (isGemmLayer(layer)) {
    auto plan = planGemm(layer, target);
    if (!plan)
      return Error{plan.error()};
    return LayerPlan{std::move(*plan)};
  }
  auto plan = planCuda(layer, target);
  if (!plan)
    return Error{plan.error()};
  return LayerPlan{std::move(*plan)};
}

Result<LayerSources> layerSources(const LayerPlan &plan,
                                  const std::string &name) {
  auto src = plan.cublas() ? emitGemmCuda(std::get<GemmPlan>(plan.plan), name)
                           : emitCuda(std::get<CudaPlan>(plan.plan), name);
  if (!src)
    return Error{src.error()};
  return LayerSources{std::move(*src), plan.cublas(), plan.why()};
}

} // namespace einstruct
