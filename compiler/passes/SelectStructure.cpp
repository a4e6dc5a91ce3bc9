// --einstruct-select-structure: dense layers become the structure that the
// search ranks first under a budget.
#include "Passes.h"
#include "dialects/EinstructDialect.h"
#include "search/Search.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

#include <cmath>

namespace einstruct {
#define GEN_PASS_DEF_SELECTSTRUCTURE
#include "Passes.h.inc"

namespace {

// A dense layer: one weight and no index shared by x and y.
bool isDense(const EinsumTerm &t) {
  if (t.weights.size() != 1)
    return false;
  for (char c : t.input)
    if (t.output.find(c) != std::string::npos)
      return false;
  return true;
}

struct SelectStructurePass
    : impl::SelectStructureBase<SelectStructurePass> {
  using Base::Base;

  void runOnOperation() override {
    mlir::ModuleOp module = getOperation();
    if (std::string bad = badOption(); !bad.empty()) {
      module.emitError() << "--einstruct-select-structure: " << bad;
      signalPassFailure();
      return;
    }
    llvm::SmallVector<LayerOp> dense;
    module.walk([&](LayerOp op) {
      EinsumTerm t;
      std::string error;
      if (termOf(op, t, error) && isDense(t))
        dense.push_back(op);
    });
    for (LayerOp op : dense)
      if (mlir::failed(replace(op))) {
        signalPassFailure();
        return;
      }
  }

  // The options, overridden field by field by the op's einstruct.budget.
  mlir::FailureOr<Constraints> budgetFor(LayerOp op) {
    Constraints k;
    k.maxFlopsRatio = double(maxFlopsRatio);
    if (maxParams > 0)
      k.maxParams = int64_t(maxParams);
    if (minPsi > 0)
      k.minPsi = double(minPsi);
    auto attr = op->getAttrOfType<mlir::DictionaryAttr>("einstruct.budget");
    if (!attr)
      return k;
    Budget b;
    std::string error;
    if (!readBudget(attr, b, error)) {
      op.emitOpError() << error;
      return mlir::failure();
    }
    if (b.maxFlopsRatio)
      k.maxFlopsRatio = b.maxFlopsRatio;
    if (b.maxParams)
      k.maxParams = b.maxParams;
    if (b.minPsi)
      k.minPsi = b.minPsi;
    if (b.maxOmega)
      k.maxOmega = b.maxOmega;
    return k;
  }

  // The pass options, checked as the CLI checks its flags.
  std::string badOption() {
    const double ratio = maxFlopsRatio, psi = minPsi;
    if (!std::isfinite(ratio) || ratio <= 0)
      return "max-flops-ratio = " + std::to_string(ratio) +
             " must be a finite number > 0";
    if (!std::isfinite(psi) || psi < 0 || psi > 1)
      return "min-psi = " + std::to_string(psi) + " must be in [0, 1]";
    if (int64_t(maxParams) < 0)
      return "max-params = " + std::to_string(int64_t(maxParams)) +
             " must be >= 0";
    return "";
  }

  mlir::LogicalResult replace(LayerOp op) {
    auto func = op->getParentOfType<mlir::func::FuncOp>();
    if (!func)
      return op.emitOpError() << "must be inside a func.func to be replaced";
    auto module = func->getParentOfType<mlir::ModuleOp>();
    if (!mlir::SymbolTable::symbolKnownUseEmpty(func, module))
      return op.emitOpError()
             << "@" << func.getSymName()
             << " is called elsewhere; selecting a structure would change "
                "its signature";
    auto k = budgetFor(op);
    if (mlir::failed(k))
      return mlir::failure();
    int64_t dIn = op.getDInAttr().getInt(), dOut = op.getDOutAttr().getInt();
    auto all = enumerate(SearchSpace{dIn, dOut, int(grid), false, {}, {}});
    if (!all)
      return op.emitOpError() << all.error();
    auto obj = parseObjective(objective, device, 16384);
    if (!obj)
      return op.emitOpError() << obj.error();
    auto ranked = rank(std::move(*all), *k, *obj);
    if (ranked.empty())
      return op.emitOpError() << "no structure for " << dIn << "x" << dOut
                              << " meets the budget";
    const Candidate &pick = ranked.front();
    const EinsumTerm &t = pick.layer.terms[0];

    mlir::OpBuilder b(op);
    auto inType = mlir::cast<mlir::RankedTensorType>(op.getInput().getType());
    mlir::Type elt = inType.getElementType();
    llvm::SmallVector<mlir::Value> weights;
    for (const auto &w : t.weights) {
      unsigned idx = func.getNumArguments();
      if (mlir::failed(func.insertArgument(
              idx, mlir::RankedTensorType::get(t.shape(w), elt), {},
              op.getLoc())))
        return op.emitOpError() << "cannot add a weight argument";
      weights.push_back(func.getArgument(idx));
    }
    llvm::SmallVector<mlir::NamedAttribute> sizes;
    for (auto [c, n] : t.sizes)
      sizes.push_back(b.getNamedAttr(std::string(1, c), b.getI64IntegerAttr(n)));
    auto repl = LayerOp::create(
        b, op.getLoc(), op.getResult().getType(), op.getInput(), weights,
        b.getStringAttr(t.str()), b.getDictionaryAttr(sizes),
        op.getDInAttr(), op.getDOutAttr(), nullptr, nullptr, nullptr);
    repl->setAttr("einstruct.selected",
                  b.getStringAttr(pick.analysis.name + ": " + pick.why));
    mlir::Value oldWeight = op.getWeights()[0];
    op.replaceAllUsesWith(repl.getResult());
    op.erase();
    // The dense weight is gone from the layer; drop it from the signature.
    if (auto arg = mlir::dyn_cast<mlir::BlockArgument>(oldWeight))
      if (arg.getOwner()->getParentOp() == func && arg.use_empty())
        if (mlir::failed(func.eraseArgument(arg.getArgNumber())))
          return repl.emitOpError() << "cannot drop the dense weight argument";
    return mlir::success();
  }
};

} // namespace
} // namespace einstruct
