// einstruct-opt: mlir-opt with the einstruct dialect and passes.
#include "compiler/cpu/CpuPipeline.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/Passes.h"
#include "compiler/tools/IrInput.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  einstruct::registerCpuPipelineDialects(registry);
  einstruct::registerEinstructPasses();
  einstruct::registerCpuPipeline();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  auto [input, output] = mlir::registerAndParseCLIOptions(
      argc, argv, "einstruct optimizer driver\n", registry);
  auto config = mlir::MlirOptMainConfig::createFromCLOptions();
  // What would crash MLIR 22 is refused first, with its place; the same
  // buffer then goes to MlirOptMain.
  auto file =
      einstruct::readIrInput(input, registry, config.inputSplitMarker());
  if (!file)
    return 1;
  auto out = einstruct::openToolOutput(output);
  if (!out)
    return 1;
  if (mlir::failed(
          mlir::MlirOptMain(out->os(), std::move(file), registry, config)))
    return 1;
  out->keep();
  return 0;
}
