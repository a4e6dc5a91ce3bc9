// --einstruct-plan-cuda: the CUDA planner's choice for every layer, as a
// typed attribute (#einstruct.cuda_plan) that lit tests check and later
// lowering reads.
#include "LayerOfOp.h"
#include "Passes.h"
#include "compiler/cuda/CudaPlan.h"
#include "compiler/cuda/GemmPlan.h"

#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_PLANCUDA
#include "Passes.h.inc"

namespace {

struct PlanCudaPass : impl::PlanCudaBase<PlanCudaPass> {
  using PlanCudaBase::PlanCudaBase;

  void runOnOperation() override {
    auto target = cudaTargetFrom(arch, dtype, smemKb, wgmma, hopperTile);
    if (!target) {
      // Reported at the first layer (a line to point at), else the root.
      mlir::Operation *at = getOperation();
      getOperation()->walk([&](mlir::Operation *op) {
        if (mlir::isa<LayerOp, MoeLayerOp>(op)) {
          at = op;
          return mlir::WalkResult::interrupt();
        }
        return mlir::WalkResult::advance();
      });
      at->emitError() << "--einstruct-plan-cuda: " << target.error();
      return signalPassFailure();
    }
    auto walk = getOperation()->walk([&](mlir::Operation *op) {
      if (auto layer = mlir::dyn_cast<LayerOp>(op))
        return plan(layer, *target);
      if (auto moe = mlir::dyn_cast<MoeLayerOp>(op))
        return plan(moe, *target);
      return mlir::WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  template <class Op>
  mlir::WalkResult plan(Op op, const CudaTarget &target) {
    auto layer = layerOfOp(op);
    if (!layer) {
      op->emitOpError() << layer.error();
      return mlir::WalkResult::interrupt();
    }
    auto attr = planAttr(*layer, target);
    if (!attr) {
      op->emitOpError() << "no CUDA plan: " << attr.error();
      return mlir::WalkResult::interrupt();
    }
    op->setAttr("einstruct.cuda_plan", *attr);
    return mlir::WalkResult::advance();
  }

  Result<CudaPlanAttr> planAttr(const Layer &layer,
                                const CudaTarget &target) {
    auto *ctx = &getContext();
    mlir::Builder b(ctx);
    if (isGemmLayer(layer)) {
      auto gemm = planGemm(layer, target);
      if (!gemm)
        return Error{gemm.error()};
      auto a = analyze(layer);
      if (!a)
        return Error{a.error()};
      return CudaPlanAttr::get(ctx, "cublas", target.arch,
                               dtypeName(target.dtype), a->paddedIn,
                               a->paddedOut, {}, {}, {}, {}, false);
    }
    auto p = planCuda(layer, target);
    if (!p)
      return Error{p.error()};
    auto tile = [&](const TwoStageConfig &c) {
      return b.getDenseI64ArrayAttr({c.TT, c.FC, c.K2P, c.smemBytes});
    };
    auto hopper = [&](const HopperConfig &h) {
      return h.enabled()
                 ? b.getDenseI64ArrayAttr({h.tile.FC, h.tile.NWG,
                                           h.tile.STAGES, h.tile.CL,
                                           h.smemBytes})
                 : mlir::DenseI64ArrayAttr();
    };
    return CudaPlanAttr::get(
        ctx, p->experts ? "grouped_moe" : "fused_two_stage", target.arch,
        dtypeName(target.dtype), p->paddedIn, p->paddedOut, tile(p->forward),
        tile(p->backwardInput), hopper(p->hopperForward),
        hopper(p->hopperBackwardInput), p->tmaGrads);
  }
};

} // namespace
} // namespace einstruct
