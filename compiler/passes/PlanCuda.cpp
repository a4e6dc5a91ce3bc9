// --einstruct-plan-cuda: the CUDA planner's choice for every layer, as a
// typed attribute (#einstruct.cuda_plan) that lit tests check and the CUDA
// emission reads (CudaPlanOfOp.h); and for every contraction of a chain,
// its kernel (CudaContract.h).
#include "CudaContract.h"
#include "CudaPlanOfOp.h"
#include "LayerOfOp.h"
#include "Passes.h"

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
        if (mlir::isa<LayerOp, MoeLayerOp, MoeLayerGradOp>(op)) {
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
      // A BTT-MoE's backward (--einstruct-autodiff's moe_layer_grad) runs
      // in the same grouped library as its forward: the same plan.
      if (auto grad = mlir::dyn_cast<MoeLayerGradOp>(op))
        return plan(grad, *target);
      // A contraction chain's (a mixer's): cuBLAS or the direct kernel.
      if (auto contract = mlir::dyn_cast<ContractOp>(op))
        return mlir::failed(planCudaContract(contract))
                   ? mlir::WalkResult::interrupt()
                   : mlir::WalkResult::advance();
      return mlir::WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  // A layer already planned keeps its plan (edited or not) once it is
  // checked against the layer and target; others get the planner's.
  template <class Op>
  mlir::WalkResult plan(Op op, const CudaTarget &target) {
    auto layer = layerOfOp(op);
    if (!layer) {
      op->emitOpError() << layer.error();
      return mlir::WalkResult::interrupt();
    }
    if (auto kept = op->template getAttrOfType<CudaPlanAttr>(kCudaPlanAttr)) {
      if (auto checked = layerPlanOf(*layer, kept, target); !checked) {
        op->emitError() << kCudaPlanAttr << ": " << checked.error();
        return mlir::WalkResult::interrupt();
      }
      return mlir::WalkResult::advance();
    }
    auto planned = planLayer(*layer, target);
    auto attr = planned ? cudaPlanAttr(&getContext(), *planned)
                        : Result<CudaPlanAttr>(Error{planned.error()});
    if (!attr) {
      // The planner's words alone: the compile command prints them after
      // the layer's name.
      op->emitError() << attr.error();
      return mlir::WalkResult::interrupt();
    }
    op->setAttr(kCudaPlanAttr, *attr);
    return mlir::WalkResult::advance();
  }
};

} // namespace
} // namespace einstruct
