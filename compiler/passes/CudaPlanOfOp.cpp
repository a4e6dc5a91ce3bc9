#include "CudaPlanOfOp.h"

#include "mlir/IR/Builders.h"

namespace einstruct {
namespace {

// The kernel kind a plan runs, as the attribute names it.
std::string kernelKind(const LayerPlan &plan) {
  if (plan.cublas())
    return "cublas";
  return std::get<CudaPlan>(plan.plan).experts ? "grouped_moe"
                                               : "fused_two_stage";
}

// The role's tiles as recorded: [TT, FC, K2P, smem] and, when on the sm_90a
// kernel, [FC, NWG, STAGES, CL, smem].
RoleTiles roleTiles(mlir::DenseI64ArrayAttr portable,
                    mlir::DenseI64ArrayAttr hopper) {
  RoleTiles t;
  if (portable && portable.size() == 4) {
    auto v = portable.asArrayRef();
    t.TT = v[0], t.FC = v[1], t.K2P = v[2], t.smemBytes = v[3];
  }
  if (hopper && hopper.size() == 5) {
    auto v = hopper.asArrayRef();
    t.hopper = HopperTile{v[0], v[1], v[2], v[3]};
    t.hopperSmemBytes = v[4];
  }
  return t;
}

// Why `attr` is not a plan for `target` (another arch or dtype), or empty.
std::string otherTarget(CudaPlanAttr attr, const CudaTarget &target) {
  if (attr.getArch() == target.arch &&
      attr.getDtype() == dtypeName(target.dtype))
    return "";
  return "planned for " + attr.getArch().str() + " " + attr.getDtype().str() +
         ", not for " + target.arch + " " + dtypeName(target.dtype) +
         " (remove the attribute to plan again)";
}

// The plan's padded feature sizes (in, out), as the attribute records them:
// the fused kernels' own, the layer's analysis for cuBLAS.
Result<std::pair<int64_t, int64_t>> paddedSizes(const LayerPlan &plan) {
  if (!plan.cublas()) {
    const CudaPlan &p = std::get<CudaPlan>(plan.plan);
    return std::pair{p.paddedIn, p.paddedOut};
  }
  auto a = analyze(plan.layer());
  if (!a)
    return Error{a.error()};
  return std::pair{a->paddedIn, a->paddedOut};
}

} // namespace

Result<CudaPlanAttr> cudaPlanAttr(mlir::MLIRContext *ctx,
                                  const LayerPlan &plan) {
  const CudaTarget &target = plan.target();
  auto padded = paddedSizes(plan);
  if (!padded)
    return Error{padded.error()};
  if (plan.cublas())
    return CudaPlanAttr::get(ctx, "cublas", target.arch,
                             dtypeName(target.dtype), padded->first,
                             padded->second, {}, {}, {}, {}, false);
  const CudaPlan &p = std::get<CudaPlan>(plan.plan);
  mlir::Builder b(ctx);
  auto tile = [&](const TwoStageConfig &c) {
    return b.getDenseI64ArrayAttr({c.TT, c.FC, c.K2P, c.smemBytes});
  };
  auto hopper = [&](const HopperConfig &h) {
    return h.enabled()
               ? b.getDenseI64ArrayAttr({h.tile.FC, h.tile.NWG, h.tile.STAGES,
                                         h.tile.CL, h.smemBytes})
               : mlir::DenseI64ArrayAttr();
  };
  return CudaPlanAttr::get(
      ctx, kernelKind(plan), target.arch, dtypeName(target.dtype), p.paddedIn,
      p.paddedOut, tile(p.forward), tile(p.backwardInput),
      hopper(p.hopperForward), hopper(p.hopperBackwardInput), p.tmaGrads);
}

Result<LayerPlan> layerPlanOf(const Layer &layer, CudaPlanAttr attr,
                              const CudaTarget &target) {
  if (auto why = otherTarget(attr, target); !why.empty())
    return Error{why};
  auto plan = planLayer(layer, target);
  if (!plan)
    return Error{plan.error()};
  const std::string kind = kernelKind(*plan);
  if (attr.getKernel() != kind)
    return Error{"kernel: '" + attr.getKernel().str() +
                 "', but the layer runs '" + kind + "'"};
  auto padded = paddedSizes(*plan);
  if (!padded)
    return Error{padded.error()};
  if (attr.getPaddedIn() != padded->first ||
      attr.getPaddedOut() != padded->second)
    return Error{
        "padded_in, padded_out: " + std::to_string(attr.getPaddedIn()) + ", " +
        std::to_string(attr.getPaddedOut()) + ", but the layer pads to " +
        std::to_string(padded->first) + ", " + std::to_string(padded->second)};
  if (plan->cublas())
    return plan;
  PlanTiles tiles{
      roleTiles(attr.getForward(), attr.getHopperForward()),
      roleTiles(attr.getBackwardInput(), attr.getHopperBackwardInput()),
      attr.getTmaGrads()};
  auto edited = withTiles(std::get<CudaPlan>(plan->plan), tiles);
  if (!edited)
    return Error{edited.error()};
  return LayerPlan{std::move(*edited)};
}

Result<LayerPlan> functionPlan(mlir::func::FuncOp f, const Layer &layer,
                               const CudaTarget &target) {
  std::vector<CudaPlanAttr> attrs;
  f.walk([&](mlir::Operation *op) {
    if (auto a = op->getAttrOfType<CudaPlanAttr>(kCudaPlanAttr))
      attrs.push_back(a);
  });
  if (attrs.empty())
    return Error{"no #einstruct.cuda_plan (run --einstruct-plan-cuda)"};
  if (attrs.size() == 1)
    return layerPlanOf(layer, attrs[0], target);
  // A sum of terms runs as one cuBLAS plan over all of them.
  for (auto a : attrs) {
    if (auto why = otherTarget(a, target); !why.empty())
      return Error{why};
    if (a.getKernel() != "cublas")
      return Error{"kernel: '" + a.getKernel().str() +
                   "' in a sum of terms, which runs on cuBLAS only"};
  }
  auto plan = planLayer(layer, target);
  if (!plan)
    return Error{plan.error()};
  if (!plan->cublas())
    return Error{"a sum of terms runs on cuBLAS only"};
  return plan;
}

} // namespace einstruct
