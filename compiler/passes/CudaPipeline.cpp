#include "CudaPipeline.h"
#include "ChainOfFunction.h"
#include "CudaPlanOfOp.h"
#include "FirstError.h"
#include "LayerOfOp.h"
#include "compiler/cuda/ChainEmitter.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/EmitMixer.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <map>

namespace einstruct {

PlanCudaOptions planCudaOptions(const CudaTarget &target) {
  PlanCudaOptions o;
  o.arch = target.arch;
  o.dtype = dtypeName(target.dtype);
  o.smemKb = target.smemBudget / 1024;
  o.wgmma = target.wgmma;
  if (const auto &t = target.hopperTile)
    o.hopperTile = std::to_string(t->FC) + ":" + std::to_string(t->NWG) + ":" +
                   std::to_string(t->STAGES) + ":" + std::to_string(t->CL);
  return o;
}

Result<mlir::OwningOpRef<mlir::ModuleOp>>
plannedLayers(mlir::MLIRContext &ctx, const std::vector<Layer> &layers,
              const std::vector<std::string> &names, const CudaTarget &target) {
  auto module = layerModule(ctx, layers, names);
  if (!module)
    return Error{"internal: the emitted IR does not verify"};
  // Each op is located at its function's name, so that an error names the
  // layer (of several, for a model).
  module->walk([&](mlir::func::FuncOp f) {
    auto at = mlir::NameLoc::get(f.getSymNameAttr());
    f.walk([&](mlir::Operation *op) { op->setLoc(at); });
  });
  FirstError first(&ctx);
  mlir::PassManager pm(&ctx);
  pm.addPass(createPlanCuda(planCudaOptions(target)));
  if (mlir::succeeded(pm.run(*module)))
    return module;
  std::string at;
  if (first.where && layers.size() > 1)
    if (auto name = mlir::dyn_cast<mlir::NameLoc>(*first.where))
      at = "@" + name.getName().str() + ": ";
  return Error{at + first.text};
}

Result<LayerPlan> planLayerThroughIr(const Layer &layer,
                                     const CudaTarget &target) {
  mlir::MLIRContext ctx(mlir::MLIRContext::Threading::DISABLED);
  auto module = plannedLayers(ctx, {layer}, {}, target);
  if (!module)
    return Error{module.error()};
  auto f = *(**module).getOps<mlir::func::FuncOp>().begin();
  return functionPlan(f, layer, target);
}

Result<std::vector<LayerLibrary>>
layerLibraries(mlir::ModuleOp module, const CudaTarget *target,
               std::vector<std::string> &skipped) {
  std::vector<LayerLibrary> libraries;
  for (auto f : module.getOps<mlir::func::FuncOp>()) {
    const std::string name = f.getSymName().str();
    auto layer = layerOfFunction(f);
    if (!layer) {
      skipped.push_back(name);
      continue;
    }
    if (!*layer)
      return Error{"@" + name + ": " + layer->error()};
    CudaPlanAttr first;
    f.walk([&](mlir::Operation *op) {
      if (auto a = op->getAttrOfType<CudaPlanAttr>(kCudaPlanAttr); a && !first)
        first = a;
    });
    CudaTarget own;
    if (!target && first) {
      own.arch = first.getArch().str();
      own.dtype = dtypeFromName(first.getDtype().str()).value_or(own.dtype);
    }
    auto plan = functionPlan(f, **layer, target ? *target : own);
    if (!plan)
      return Error{"@" + name + ": " + plan.error()};
    auto sources = layerSources(*plan, name);
    if (!sources)
      return Error{"@" + name + ": " + sources.error()};
    std::string text;
    llvm::raw_string_ostream os(text);
    if (first)
      mlir::Attribute(first).print(os);
    libraries.push_back({name, std::move(*plan), std::move(*sources), text});
  }
  return libraries;
}

Result<std::vector<ChainLibrary>> chainLibraries(mlir::ModuleOp module,
                                                 bool bf16Boundary) {
  FirstError first(module.getContext());
  std::vector<ChainLibrary> libraries;
  // The extents of @f_saving's residuals (S·L rows, say), by f:
  // @f_backward_saved's residual arguments, in the same order.
  std::map<std::string, std::vector<ChainSize>> savedExtents;
  for (auto f : module.getOps<mlir::func::FuncOp>()) {
    if (!isChainFunction(f))
      continue;
    const std::string name = f.getSymName().str();
    std::vector<ChainSize> extents;
    if (llvm::StringRef base = name; base.consume_back("_backward_saved")) {
      const std::vector<ChainSize> &kept = savedExtents[base.str()];
      size_t r = 0;
      for (unsigned k = 0; k < f.getNumArguments(); ++k)
        extents.push_back(f.getArgAttr(k, kResidualAttr) && r < kept.size()
                              ? kept[r++]
                              : ChainSize{1, 1});
    }
    auto plan = chainOfFunction(f, bf16Boundary, extents);
    if (!plan)
      return Error{first.text.empty() ? plan.error()
                                      : "@" + name + ": " + first.text};
    if (llvm::StringRef saving = name; saving.consume_back("_saving"))
      for (size_t k = 0; k < plan->residualOutput.size(); ++k)
        if (plan->residualOutput[k])
          savedExtents[saving.str()].push_back(plan->outputExtents[k]);
    auto sources = emitChain(*plan, name);
    if (!sources)
      return Error{"@" + name + ": " + sources.error()};
    libraries.push_back({name, std::move(*plan), std::move(*sources)});
  }
  return libraries;
}

Result<mlir::OwningOpRef<mlir::ModuleOp>>
plannedMixer(mlir::MLIRContext &ctx, const MixerPlan &plan,
             const std::string &name) {
  auto module = mlir::OwningOpRef<mlir::ModuleOp>(
      mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx)));
  // One call takes every channel: the GPU wants whole launches, where the
  // CPU splits channels into blocks for its threads.
  MixerPlan whole = plan;
  if (!whole.chunkedSsd())
    whole.channelBlock = whole.channels;
  emitMixer(*module, whole, name);
  FirstError first(&ctx);
  mlir::PassManager pm(&ctx);
  // The mixers the CPU trains from saved residuals (JitMixer) get the same
  // pair, @name_saving and @name_backward_saved.
  AutodiffOptions autodiff;
  autodiff.saveResiduals = plan.chunkedSsd() || plan.isBlock();
  pm.addPass(createAutodiff(autodiff));
  // A block's projections (einstruct.layer) as contractions, which the
  // chain runs as cuBLAS GEMMs or direct kernels like the mixer's own.
  pm.addPass(createPlanContractions());
  pm.addPass(createPlanCuda());
  // The backward transposes one cotangent the same way more than once.
  pm.addPass(mlir::createCSEPass());
  if (mlir::failed(pm.run(*module)))
    return Error{"internal: " + first.text};
  return module;
}

} // namespace einstruct
