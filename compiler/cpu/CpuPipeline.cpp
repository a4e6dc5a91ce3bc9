#include "CpuPipeline.h"
#include "compiler/passes/Passes.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/FuncBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

namespace einstruct {

void registerCpuPipelineDialects(mlir::DialectRegistry &registry) {
  registry.insert<EinstructDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
                  mlir::linalg::LinalgDialect, mlir::memref::MemRefDialect,
                  mlir::bufferization::BufferizationDialect,
                  mlir::scf::SCFDialect, mlir::cf::ControlFlowDialect,
                  mlir::affine::AffineDialect, mlir::vector::VectorDialect,
                  mlir::math::MathDialect,
                  mlir::LLVM::LLVMDialect>();
  mlir::arith::registerBufferizableOpInterfaceExternalModels(registry);
  mlir::linalg::registerBufferizableOpInterfaceExternalModels(registry);
  mlir::tensor::registerBufferizableOpInterfaceExternalModels(registry);
  mlir::scf::registerBufferizableOpInterfaceExternalModels(registry);
  mlir::bufferization::func_ext::registerBufferizableOpInterfaceExternalModels(
      registry);
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
}

void buildCpuPipeline(mlir::OpPassManager &pm, VectorUnits units) {
  pm.addPass(createLowerMoe()); // routed experts: layers inside loops
  pm.addPass(createPlanContractions());
  pm.addPass(mlir::createCSEPass()); // a backward pass repeats contractions
  pm.addPass(createLowerToLinalg());
  pm.addPass(createLowerSsd()); // SSD mixers' segment sums
  pm.addPass(mlir::createCSEPass()); // the decays' gradient rebuilds them
  pm.addPass(mlir::createConvertElementwiseToLinalgPass());
  pm.addPass(createFreshInits()); // `a + b` no longer writes into a's copy
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(createFuseElementwise()); // one pass over memory per chain
  pm.addNestedPass<mlir::func::FuncOp>(createFuseBatchTiles());
  pm.addPass(mlir::createCanonicalizerPass());
  mlir::bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      mlir::bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(mlir::bufferization::createOneShotBufferizePass(bufferize));
  mlir::bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createStridedCopies()); // slices, pads: vectorized loops
  pm.addPass(createBlockTransposes(BlockTransposesOptions{units.lanes}));
  pm.addPass(createVectorizeContractions(
      VectorizeContractionsOptions{units.lanes, units.registers}));
  pm.addPass(mlir::createConvertLinalgToLoopsPass());
  pm.addPass(mlir::createSCFToControlFlowPass());
  pm.addPass(mlir::memref::createExpandStridedMetadataPass());
  pm.addPass(mlir::createLowerAffinePass());
  // BlockTransposes' lanes × lanes register transposes: the AVX-512
  // shuffle network for 16 × 16, one flat shuffle otherwise.
  mlir::ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.vectorTransposeLowering =
      units.lanes == 16 ? mlir::vector::VectorTransposeLowering::Shuffle16x16
                        : mlir::vector::VectorTransposeLowering::Shuffle1D;
  pm.addPass(mlir::createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(mlir::createUBToLLVMConversionPass()); // the shuffles' poison
  // Allocation through _mlir_memref_to_llvm_alloc/free, which JitLayer binds
  // to its buffer pool.
  mlir::FinalizeMemRefToLLVMConversionPassOptions memrefToLLVM;
  memrefToLLVM.useGenericFunctions = true;
  pm.addPass(mlir::createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  pm.addPass(mlir::createConvertMathToLLVMPass()); // routing's exp/log
  pm.addPass(mlir::createArithToLLVMConversionPass());
  pm.addPass(mlir::createConvertIndexToLLVMPass());
  pm.addPass(mlir::createConvertFuncToLLVMPass());
  pm.addPass(mlir::createConvertControlFlowToLLVMPass());
  pm.addPass(mlir::createReconcileUnrealizedCastsPass());
}

namespace {
struct PipelineOptions : mlir::PassPipelineOptions<PipelineOptions> {
  Option<int64_t> lanes{*this, "lanes",
                        llvm::cl::desc("f32 lanes (8: AVX2, 16: AVX-512)"),
                        llvm::cl::init(kAvx2.lanes)};
  Option<int64_t> registers{*this, "registers",
                            llvm::cl::desc("vector registers (16 or 32)"),
                            llvm::cl::init(kAvx2.registers)};
};
} // namespace

void registerCpuPipeline() {
  mlir::PassPipelineRegistration<PipelineOptions>(
      "einstruct-lower-to-llvm",
      "Lower einstruct layers to the LLVM dialect through linalg, "
      "bufferization and loops (AVX2 shapes unless lanes/registers say)",
      [](mlir::OpPassManager &pm, const PipelineOptions &o) {
        buildCpuPipeline(pm, VectorUnits{o.lanes, o.registers});
      });
}

} // namespace einstruct
