// einstruct-translate: the translations out of einstruct IR. Planned IR
// (--einstruct-plan-cuda) becomes each layer function's CUDA library as
// `einstruct compile` writes it, from the #einstruct.cuda_plan it holds:
//   --einstruct-to-cuda-header   NAME.h (the library's C ABI)
//   --einstruct-to-cuda-source   NAME.cu (the kernels and their launches)
// one function's after another's when there are several.
#include "compiler/cpu/CpuPipeline.h"
#include "compiler/passes/CudaPipeline.h"
#include "compiler/tools/IrInput.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

namespace {

// Every layer function's header or source, in order, then every
// contraction chain's (a mixer's functions).
mlir::LogicalResult cudaLibraries(mlir::Operation *op, llvm::raw_ostream &os,
                                  bool header) {
  auto module = mlir::dyn_cast<mlir::ModuleOp>(op);
  if (!module)
    return op->emitError() << "expected a module";
  std::vector<std::string> skipped;
  auto libraries = einstruct::layerLibraries(module, nullptr, skipped);
  if (!libraries)
    return op->emitError() << libraries.error();
  auto chains = einstruct::chainLibraries(module);
  if (!chains)
    return op->emitError() << chains.error();
  if (libraries->empty() && chains->empty())
    return op->emitError() << "no layer function (einstruct.layer ops summed "
                              "and returned, or one einstruct.moe_layer) "
                              "and no contraction chain";
  for (const auto &lib : *libraries)
    os << (header ? lib.sources.sources.header : lib.sources.sources.source);
  for (const auto &lib : *chains)
    os << (header ? lib.sources.header : lib.sources.source);
  return mlir::success();
}

void registerTranslations() {
  auto dialects = [](mlir::DialectRegistry &registry) {
    einstruct::registerCpuPipelineDialects(registry);
  };
  static mlir::TranslateFromMLIRRegistration header(
      "einstruct-to-cuda-header",
      "each planned layer function's CUDA library header (NAME.h)",
      [](mlir::Operation *op, llvm::raw_ostream &os) {
        return cudaLibraries(op, os, true);
      },
      dialects);
  static mlir::TranslateFromMLIRRegistration source(
      "einstruct-to-cuda-source",
      "each planned layer function's CUDA library source (NAME.cu)",
      [](mlir::Operation *op, llvm::raw_ostream &os) {
        return cudaLibraries(op, os, false);
      },
      dialects);
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  registerTranslations();
  llvm::cl::opt<std::string> input(llvm::cl::Positional,
                                   llvm::cl::desc("<input file>"),
                                   llvm::cl::init("-"));
  llvm::cl::opt<std::string> output("o", llvm::cl::desc("output file"),
                                    llvm::cl::value_desc("filename"),
                                    llvm::cl::init("-"));
  llvm::cl::opt<const mlir::Translation *, false, mlir::TranslationParser>
      translation(llvm::cl::desc("Translation to perform"), llvm::cl::Required);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "einstruct translation driver\n");
  // What would crash MLIR 22 is refused first.
  mlir::DialectRegistry dialects;
  einstruct::registerCpuPipelineDialects(dialects);
  auto file = einstruct::readIrInput(input, dialects);
  if (!file)
    return 1;
  // Written only when the translation succeeds: no partial file.
  auto out = einstruct::openToolOutput(output);
  if (!out)
    return 1;
  auto sourceMgr = std::make_shared<llvm::SourceMgr>();
  sourceMgr->AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  mlir::MLIRContext context;
  mlir::SourceMgrDiagnosticHandler diagnostics(*sourceMgr, &context);
  if (mlir::failed((*translation)(sourceMgr, out->os(), &context)))
    return 1;
  out->keep();
  return 0;
}
