#include "UnaryFunctions.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include "llvm/ADT/StringSwitch.h"

namespace einstruct {

namespace {
using mlir::Value;
namespace arith = mlir::arith;
namespace math = mlir::math;

Value constant(mlir::OpBuilder &b, mlir::Location loc, Value like, double v) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(like.getType(), v));
}

// 1 / (1 + e^−z): e^−z overflows to inf for z < −88, giving 0 as it should.
Value sigmoid(mlir::OpBuilder &b, mlir::Location loc, Value z) {
  Value one = constant(b, loc, z, 1.0);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, z));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, e));
}
} // namespace

Value unaryScalar(mlir::OpBuilder &b, mlir::Location loc, llvm::StringRef kind,
                  Value z) {
  auto mul = [&](Value x, Value y) -> Value {
    return arith::MulFOp::create(b, loc, x, y);
  };
  if (kind == "identity")
    return z;
  if (kind == "exp")
    return math::ExpOp::create(b, loc, z);
  if (kind == "sigmoid")
    return sigmoid(b, loc, z);
  if (kind == "silu")
    return mul(z, sigmoid(b, loc, z));
  if (kind == "softplus") {
    // max(z, 0) + log1p(e^−|z|): no overflow, torch's values to rounding.
    Value zero = constant(b, loc, z, 0.0);
    Value tail = math::Log1pOp::create(
        b, loc,
        math::ExpOp::create(
            b, loc,
            arith::NegFOp::create(b, loc, math::AbsFOp::create(b, loc, z))));
    return arith::AddFOp::create(
        b, loc, arith::MaximumFOp::create(b, loc, z, zero), tail);
  }
  if (kind == "rsqrt")
    return math::RsqrtOp::create(b, loc, z);
  if (kind == "sin")
    return math::SinOp::create(b, loc, z);
  if (kind == "cos")
    return math::CosOp::create(b, loc, z);
  if (kind == "sigmoid_grad") { // σ(1 − σ)
    Value s = sigmoid(b, loc, z);
    return mul(s, arith::SubFOp::create(b, loc, constant(b, loc, z, 1.0), s));
  }
  if (kind == "silu_grad") { // σ(z)·(1 + z·(1 − σ(z)))
    Value s = sigmoid(b, loc, z), one = constant(b, loc, z, 1.0);
    Value inner = arith::AddFOp::create(
        b, loc, one, mul(z, arith::SubFOp::create(b, loc, one, s)));
    return mul(s, inner);
  }
  // rsqrt_grad: −z^(−3/2) / 2 (the verifier admits no other kind).
  Value r = math::RsqrtOp::create(b, loc, z);
  return mul(constant(b, loc, z, -0.5), mul(r, mul(r, r)));
}

std::optional<UnaryDerivative> unaryDerivative(UnaryOp op) {
  const llvm::StringRef kind = op.getKind();
  const double s = op.getScale().convertToDouble(),
               t = op.getShift().convertToDouble();
  if (kind == "cos") // −sin(z) = sin(−z)
    return UnaryDerivative{"sin", -s, -t, s};
  // f′ at the same argument; by the chain rule every derivative carries the
  // inner factor s (identity's is s alone).
  auto derivative = llvm::StringSwitch<std::optional<llvm::StringRef>>(kind)
                        .Case("identity", "")
                        .Case("exp", "exp")
                        .Case("sigmoid", "sigmoid_grad")
                        .Case("silu", "silu_grad")
                        .Case("softplus", "sigmoid")
                        .Case("rsqrt", "rsqrt_grad")
                        .Case("sin", "cos")
                        .Default(std::nullopt);
  if (!derivative)
    return std::nullopt;
  return UnaryDerivative{derivative->str(), s, t, s};
}

} // namespace einstruct
