#include "ParseModule.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

namespace einstruct {

mlir::LogicalResult refuseVerifierCrashes(mlir::Operation *root) {
  auto walk = root->walk([](mlir::tensor::ExpandShapeOp e) {
    // Read raw: the verifier, not this walk, judges a malformed attribute.
    mlir::ArrayAttr groups = e.getReassociationAttr();
    for (auto [k, group] : llvm::enumerate(
             groups ? groups.getValue() : llvm::ArrayRef<mlir::Attribute>{}))
      if (auto g = mlir::dyn_cast<mlir::ArrayAttr>(group); g && g.empty()) {
        e.emitOpError() << "reassociation group " << k << " is empty";
        return mlir::WalkResult::interrupt();
      }
    return mlir::WalkResult::advance();
  });
  return mlir::failure(walk.wasInterrupted());
}

mlir::OwningOpRef<mlir::ModuleOp> parseModule(llvm::StringRef text,
                                              mlir::MLIRContext *ctx,
                                              llvm::StringRef name) {
  mlir::ParserConfig config(ctx, /*verifyAfterParse=*/false);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, config, name);
  if (!module || mlir::failed(refuseVerifierCrashes(*module)) ||
      mlir::failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

} // namespace einstruct
