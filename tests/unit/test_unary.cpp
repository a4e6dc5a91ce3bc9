// einstruct.unary compiled for the CPU: every kind against its formula in
// double (written here), and the gradient --einstruct-autodiff derives
// against central differences of the compiled forward.
#include "compiler/cpu/JitModule.h"
#include "compiler/cpu/JitOptimizer.h"
#include "compiler/passes/Passes.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>

using namespace einstruct;

namespace {

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

// f(z) as torch defines each (softplus without its threshold, which only
// rounds).
double reference(const std::string &kind, double z) {
  if (kind == "identity")
    return z;
  if (kind == "exp")
    return std::exp(z);
  if (kind == "sigmoid")
    return sigmoid(z);
  if (kind == "silu")
    return z * sigmoid(z);
  if (kind == "softplus")
    return std::log(1 + std::exp(z));
  if (kind == "rsqrt")
    return 1 / std::sqrt(z);
  if (kind == "sin")
    return std::sin(z);
  if (kind == "cos")
    return std::cos(z);
  if (kind == "sigmoid_grad")
    return sigmoid(z) * (1 - sigmoid(z));
  if (kind == "silu_grad")
    return sigmoid(z) + z * sigmoid(z) * (1 - sigmoid(z));
  REQUIRE(kind == "rsqrt_grad");
  return -0.5 * std::pow(z, -1.5);
}

constexpr int64_t kN = 9;

// @f(x [?, columns]) = unary(kind, scale, shift)(x), and its backward.
std::unique_ptr<JitModule> compileUnary(const std::string &kind, double scale,
                                        double shift, bool backward,
                                        int64_t columns = kN) {
  auto jit = JitModule::compile(
      [&](mlir::ModuleOp m) {
        mlir::OpBuilder b(m.getContext());
        b.setInsertionPointToEnd(m.getBody());
        auto t = mlir::RankedTensorType::get(
            {mlir::ShapedType::kDynamic, columns}, b.getF32Type());
        auto fn = mlir::func::FuncOp::create(b, b.getUnknownLoc(), "f",
                                             b.getFunctionType({t}, {t}));
        b.setInsertionPointToStart(fn.addEntryBlock());
        mlir::Value y = UnaryOp::create(b, b.getUnknownLoc(), fn.getArgument(0),
                                        kind, scale, shift);
        mlir::func::ReturnOp::create(b, b.getUnknownLoc(), y);
      },
      [&](mlir::OpPassManager &pm) {
        if (backward)
          pm.addPass(createAutodiff());
      },
      backward ? std::vector<std::string>{"f", "f_backward"}
               : std::vector<std::string>{"f"},
      hostVectorUnits());
  REQUIRE(jit);
  return std::move(*jit);
}

// `in` as [2, kN] (or [size / columns, columns]).
std::vector<float> call(const JitModule &jit, size_t entry,
                        std::vector<std::vector<float>> in,
                        int64_t columns = kN) {
  const std::vector<int64_t> shape = {int64_t(in[0].size()) / columns, columns};
  std::vector<Descriptor> ops;
  std::vector<const void *> data;
  for (auto &v : in) {
    ops.emplace_back(v.data(), shape);
    data.push_back(v.data());
  }
  std::vector<float> out(in[0].size());
  callInto(jit.entry(entry), ops, data, {shape}, {out.data()});
  return out;
}

// Inputs inside each function's domain (rsqrt's z > 0 with scale 0.5,
// shift 0.25), across its interesting range (softplus and sigmoid out to
// ±30 in the tails).
std::vector<float> inputs(double lo, double hi, size_t n = 2 * kN) {
  std::vector<float> x(n);
  for (size_t k = 0; k < x.size(); ++k)
    x[k] = float(lo + (hi - lo) * double(k) / double(x.size() - 1));
  return x;
}

// The compiled y within 2e-6 of the formula's value (relative above 1).
bool nearFormula(float y, double want) {
  return std::abs(y - want) <= 2e-6 * std::max(1.0, std::abs(want));
}

} // namespace

TEST_CASE("einstruct.unary: every kind's forward against its formula",
          "[unary]") {
  for (std::string kind :
       {"identity", "exp", "sigmoid", "silu", "softplus", "rsqrt", "sin", "cos",
        "silu_grad", "sigmoid_grad", "rsqrt_grad"}) {
    const bool positive = kind.rfind("rsqrt", 0) == 0;
    const double scale = positive ? 0.5 : -1.5, shift = positive ? 0.25 : 0.5;
    auto x = positive ? inputs(0.01, 8) : inputs(-20, 20);
    auto jit = compileUnary(kind, scale, shift, false);
    auto y = call(*jit, 0, {x});
    for (size_t k = 0; k < x.size(); ++k) {
      const double want = reference(kind, scale * double(x[k]) + shift);
      INFO(kind << " at x = " << x[k]);
      CHECK(nearFormula(y[k], want));
    }
  }
}

TEST_CASE("einstruct.unary: long rows run glibc's vector functions, within "
          "the same bounds, special values included",
          "[unary]") {
#ifdef __GLIBC__
  // LLVM vectorises the loops' expf, sinf, ... into libmvec's functions:
  // without it they are a libm call per element.
  CHECK(vectorMathLibrary() == "libmvec");
#endif
  constexpr int64_t columns = 64;
  auto x = inputs(-20, 20, 64 * columns);
  for (std::string kind :
       {"exp", "sigmoid", "silu", "softplus", "sin", "cos", "silu_grad"}) {
    auto jit = compileUnary(kind, 1, 0, false, columns);
    auto y = call(*jit, 0, {x}, columns);
    for (size_t k = 0; k < x.size(); ++k) {
      const double want = reference(kind, double(x[k]));
      INFO(kind << " at x = " << x[k]);
      REQUIRE(nearFormula(y[k], want));
    }
  }
  // exp where its vector form takes the slow lanes: the SSD's masked
  // decays are exp(−inf); overflow, underflow and NaN as libm gives them.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special(columns, 1.0f);
  special[0] = -inf;
  special[1] = inf;
  special[2] = std::nanf("");
  special[3] = -200;
  special[4] = 200;
  special[5] = -100;
  auto jit = compileUnary("exp", 1, 0, false, columns);
  auto y = call(*jit, 0, {special}, columns);
  CHECK(y[0] == 0);
  CHECK(y[1] == inf);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 0);
  CHECK(y[4] == inf);
  CHECK(std::abs(y[5] - std::exp(-100.0)) <= 1e-45);
  for (size_t k = 6; k < special.size(); ++k)
    CHECK(nearFormula(y[k], std::exp(1.0)));
}

TEST_CASE("einstruct.unary: autodiff's gradient against central differences",
          "[unary]") {
  for (std::string kind : {"identity", "exp", "sigmoid", "silu", "softplus",
                           "rsqrt", "sin", "cos"}) {
    const bool positive = kind == "rsqrt";
    const double scale = positive ? 0.5 : -0.75, shift = positive ? 0.25 : 0.3;
    auto x = positive ? inputs(0.2, 4) : inputs(-4, 4);
    std::vector<float> dy(x.size());
    for (size_t k = 0; k < dy.size(); ++k)
      dy[k] = float(std::cos(3.0 * double(k))); // signs of both kinds
    auto jit = compileUnary(kind, scale, shift, true);
    auto dx = call(*jit, 1, {x, dy});
    const float h = 1e-2f;
    for (size_t k = 0; k < x.size(); ++k) {
      auto xp = x, xm = x;
      xp[k] += h;
      xm[k] -= h;
      const double fd =
          double(dy[k]) *
          (double(call(*jit, 0, {xp})[k]) - double(call(*jit, 0, {xm})[k])) /
          (double(xp[k]) - double(xm[k]));
      INFO(kind << " at x = " << x[k]);
      CHECK(std::abs(dx[k] - fd) <= 2e-3 * std::max(1.0, std::abs(fd)));
    }
  }
}
