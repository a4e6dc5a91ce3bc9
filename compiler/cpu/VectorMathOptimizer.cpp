#include "VectorMathOptimizer.h"

#include "mlir/ExecutionEngine/OptUtils.h"

#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/IR/Module.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Target/TargetMachine.h"

namespace einstruct {

const std::string &vectorMathLibrary() {
  // Loaded globally, so the JIT's process-symbol lookup (and a cached
  // object's) resolves _ZGVdN8v_expf and the rest.
  static const std::string name =
      llvm::sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1")
          ? ""
          : "libmvec";
  return name;
}

std::function<llvm::Error(llvm::Module *)>
vectorMathOptimizer(llvm::TargetMachine *tm) {
  if (vectorMathLibrary().empty())
    return mlir::makeOptimizingTransformer(3, 0, tm);
  return [tm](llvm::Module *m) -> llvm::Error {
    // MLIR's transformer at -O3, with the vector library in the target
    // library info (registered before the defaults, so it is the one used).
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PipelineTuningOptions tuning;
    tuning.LoopUnrolling = true;
    tuning.LoopInterleaving = true;
    tuning.LoopVectorization = true;
    tuning.SLPVectorization = true;
    llvm::PassBuilder pb(tm, tuning);
    llvm::TargetLibraryInfoImpl libraryInfo(m->getTargetTriple(),
                                            llvm::VectorLibrary::LIBMVEC);
    fam.registerPass([&] { return llvm::TargetLibraryAnalysis(libraryInfo); });
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(*m, mam);
    return llvm::Error::success();
  };
}

} // namespace einstruct
