// einstruct-opt: mlir-opt with the einstruct dialect and passes.
#include "compiler/cpu/CpuPipeline.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/Passes.h"
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
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "einstruct optimizer driver\n", registry));
}
