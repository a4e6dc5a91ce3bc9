// What einstruct.unary's kinds compute, in one place: the scalar body its
// lowering emits and the derivative its gradient rule emits.
#pragma once
#include "dialects/EinstructDialect.h"

#include "mlir/IR/Builders.h"

#include <optional>

namespace einstruct {

// f(z) for one f32 (or other float) scalar z, f named by `kind`.
mlir::Value unaryScalar(mlir::OpBuilder &b, mlir::Location loc,
                        llvm::StringRef kind, mlir::Value z);

// d/dx f(scale·x + shift) = factor · g(gScale·x + gShift): the unary op g
// (kind empty: g ≡ 1). None for the derivative kinds themselves (no
// second derivatives).
struct UnaryDerivative {
  std::string kind;
  double scale = 1, shift = 0, factor = 1;
};
std::optional<UnaryDerivative> unaryDerivative(UnaryOp op);

} // namespace einstruct
