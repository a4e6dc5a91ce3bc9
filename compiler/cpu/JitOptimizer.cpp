#include "JitOptimizer.h"

#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/IR/Module.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Transforms/Scalar/LoopUnrollPass.h"

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

std::string jitOptimizerKey() {
  return "O3, full unroll at O2 only, " + vectorMathLibrary();
}

std::function<llvm::Error(llvm::Module *)>
jitOptimizer(llvm::TargetMachine *tm) {
  return [tm](llvm::Module *m) -> llvm::Error {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PipelineTuningOptions tuning;
    tuning.LoopUnrolling = false;
    tuning.LoopInterleaving = true;
    tuning.LoopVectorization = true;
    tuning.SLPVectorization = true;
    llvm::PassBuilder pb(tm, tuning);
    // LoopUnrolling = false leaves O3's full unroll only for loops marked
    // so; this one unrolls short constant loops whole at -O2's threshold.
    pb.registerLoopOptimizerEndEPCallback(
        [](llvm::LoopPassManager &lpm, llvm::OptimizationLevel) {
          lpm.addPass(llvm::LoopFullUnrollPass(/*OptLevel=*/2));
        });
    // The vector library goes in the target library info, registered before
    // the defaults so it is the one used.
    llvm::TargetLibraryInfoImpl libraryInfo(m->getTargetTriple(),
                                            vectorMathLibrary().empty()
                                                ? llvm::VectorLibrary::NoLibrary
                                                : llvm::VectorLibrary::LIBMVEC);
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
