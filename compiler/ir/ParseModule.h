// Parsing einstruct IR text without crashing MLIR 22: its
// tensor.expand_shape verifier dereferences a null affine expression when
// a reassociation group is empty (collapse_shape's refuses one cleanly).
// So the text is parsed unverified, such an op is refused at its place,
// and only then is the whole verified.
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include "llvm/ADT/StringRef.h"

namespace einstruct {

// An error on the first op below `root` whose MLIR 22 verifier would
// crash, and failure; success when there is none.
mlir::LogicalResult refuseVerifierCrashes(mlir::Operation *root);

// `text` (named `name` in locations) as a verified module, or null after
// the error went to ctx's diagnostic handler.
mlir::OwningOpRef<mlir::ModuleOp>
parseModule(llvm::StringRef text, mlir::MLIRContext *ctx, llvm::StringRef name);

} // namespace einstruct
