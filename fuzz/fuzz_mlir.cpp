// What einstruct-opt does with arbitrary dialect text: parse, verify, then
// einstruct's passes (cost annotation; the CUDA planner and the libraries
// einstruct-translate emits from its plans, layers' and contraction chains';
// autodiff, the MoE lowering, contraction planning and the lowering to linalg,
// the SSD decays too) on what verifies. The dialects are those a layer's IR
// uses, so that the fuzzer spends its time on einstruct's own parser, verifiers
// and passes rather than on the rest of upstream MLIR.
#include "FuzzCheck.h"
#include "compiler/frontend/TextNesting.h"
#include "compiler/ir/ParseModule.h"
#include "compiler/passes/CudaPipeline.h"
#include "compiler/passes/Passes.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace {

// Runs `pipeline` on a copy of `module`; the copy when it succeeds (and
// then verifies), else null.
OwningOpRef<ModuleOp> runPipeline(ModuleOp module, const char *pipeline) {
  OwningOpRef<ModuleOp> copy = module.clone();
  PassManager pm(copy->getContext());
  if (failed(parsePassPipeline(pipeline, pm)))
    std::abort(); // a typo here, not a finding
  if (failed(pm.run(*copy)))
    return nullptr;
  FUZZ_CHECK(succeeded(verify(*copy)));
  return copy;
}

// A planned module's CUDA libraries, as einstruct-translate emits them from
// the plans it holds (kept or edited ones included): an error or text,
// never a crash.
void emitLibraries(ModuleOp planned) {
  std::vector<std::string> skipped;
  auto libraries = einstruct::layerLibraries(planned, nullptr, skipped);
  if (libraries)
    for (const auto &lib : *libraries)
      FUZZ_CHECK(!lib.sources.sources.source.empty());
  // Contraction chains (mixers): every step's buffers exist.
  auto chains = einstruct::chainLibraries(planned);
  if (chains)
    for (const auto &lib : *chains) {
      FUZZ_CHECK(!lib.sources.source.empty());
      for (const auto &step : lib.plan.steps)
        for (const auto *list : {&step.in, &step.out})
          for (int b : *list)
            FUZZ_CHECK(b >= 0 && b < int(lib.plan.buffers.size()));
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  einstruct::registerEinstructPasses();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  DialectRegistry registry;
  registry.insert<einstruct::EinstructDialect, func::FuncDialect,
                  arith::ArithDialect, tensor::TensorDialect,
                  linalg::LinalgDialect>();
  MLIRContext ctx(registry, MLIRContext::Threading::DISABLED);
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  // MLIR's lexer needs the NUL after the text, as a file read gives it.
  std::string text = fuzzText(data, size);
  // Linalg is loaded because the lowering emits it, but parsing linalg text
  // is upstream's: MLIR 22's linalg.transpose parser dereferences a null
  // attribute on `permutation = [&1, 2, 0]` (regressions/fuzz_mlir/
  // upstream-linalg-transpose). Inputs that name linalg ops are skipped.
  if (text.find("linalg.") != std::string::npos)
    return 0;
  // As einstruct-opt does: nesting that would overflow the parser's stack is
  // refused before parsing (and must be, whatever the text).
  if (einstruct::tooDeeplyNested(text))
    return 0;
  // As the tools parse: ops MLIR 22's verifiers crash on (an expand_shape
  // with an empty reassociation group; regressions/fuzz_mlir/
  // upstream-expand-shape-empty-group) are refused before verifying.
  auto module = einstruct::parseModule(text, &ctx, "fuzz");
  if (!module)
    return 0;
  runPipeline(*module, "builtin.module(einstruct-annotate-cost)");
  // The CUDA planner on both arches: a plan it attaches must verify.
  if (auto planned =
          runPipeline(*module, "builtin.module(einstruct-plan-cuda)"))
    emitLibraries(*planned);
  if (auto planned = runPipeline(*module, "builtin.module(einstruct-plan-cuda{"
                                          "arch=sm_80 dtype=f32})"))
    emitLibraries(*planned);
  // Autodiff first, as the JIT runs it: a BTT-MoE function's backward is a
  // moe_layer_grad for einstruct-lower-moe to lower; the saving pair's
  // residuals are a minimum cut over whatever the function holds.
  runPipeline(*module, "builtin.module(einstruct-autodiff{save-residuals=true},"
                       "einstruct-lower-moe,"
                       "einstruct-plan-contractions,"
                       "einstruct-lower-to-linalg,"
                       "einstruct-lower-ssd)");
  return 0;
}
