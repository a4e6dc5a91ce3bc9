#include "EinstructDialect.h"
#include "search/Einsum.h"
#include "search/Theta.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"

#include <cmath>

using namespace mlir;

#include "EinstructOpsDialect.cpp.inc"

void einstruct::EinstructDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "EinstructOps.cpp.inc"
      >();
  registerAttributes();
}


#define GET_OP_CLASSES
#include "EinstructOps.cpp.inc"

LogicalResult
einstruct::EinstructDialect::verifyOperationAttribute(Operation *op,
                                                      NamedAttribute attr) {
  if (attr.getName() != "einstruct.budget")
    return success();
  auto dict = dyn_cast<DictionaryAttr>(attr.getValue());
  if (!dict)
    return op->emitError() << "einstruct.budget must be a dictionary";
  Budget budget;
  std::string error;
  if (!readBudget(dict, budget, error))
    return op->emitError() << error;
  return success();
}

namespace einstruct {

bool readBudget(DictionaryAttr budget, Budget &out, std::string &error) {
  for (NamedAttribute e : budget) {
    const std::string key = e.getName().getValue().str();
    const std::string where = "einstruct.budget." + key;
    std::optional<double> v;
    if (auto f = dyn_cast<FloatAttr>(e.getValue()))
      v = f.getValueAsDouble();
    else if (auto i = dyn_cast<IntegerAttr>(e.getValue()))
      v = double(i.getInt());
    if (!v) {
      error = where + " must be a number";
      return false;
    }
    if (!std::isfinite(*v)) {
      error = where + " must be a finite number, not " + std::to_string(*v);
      return false;
    }
    if (key == "max_flops_ratio") {
      if (*v <= 0) {
        error = where + " must be > 0";
        return false;
      }
      out.maxFlopsRatio = *v;
    } else if (key == "min_psi" || key == "max_omega") {
      if (*v < 0 || *v > 1) {
        error = where + " must be in [0, 1]";
        return false;
      }
      (key == "min_psi" ? out.minPsi : out.maxOmega) = *v;
    } else if (key == "max_params") {
      if (*v < 0 || *v != std::floor(*v) || *v > 9.0e18) {
        error = where + " must be a whole number >= 0";
        return false;
      }
      out.maxParams = int64_t(*v);
    } else {
      error = "einstruct.budget has unknown key '" + key +
              "' (known: max_flops_ratio, max_params, min_psi, max_omega)";
      return false;
    }
  }
  return true;
}

bool termOf(LayerOp op, EinsumTerm &term, std::string &error) {
  return termOf(op.getSpec(), op.getSizes(), term, error);
}

bool termOf(StringRef spec, DictionaryAttr sizesAttr, EinsumTerm &term,
            std::string &error) {
  std::map<char, int64_t> sizes;
  for (NamedAttribute entry : sizesAttr) {
    StringRef key = entry.getName().getValue();
    auto value = dyn_cast<IntegerAttr>(entry.getValue());
    if (key.size() != 1 || !value) {
      error = ("sizes entry '" + key +
               "' must map one index letter to an integer")
                  .str();
      return false;
    }
    sizes[key[0]] = value.getInt();
  }
  auto t = makeEinsum(spec.str(), sizes);
  if (!t) {
    error = t.error();
    return false;
  }
  term = *t;
  return true;
}

// Checks that `type` has one static dimension per letter, sized as given.
static LogicalResult checkWeight(Operation *op, unsigned index,
                                 RankedTensorType type,
                                 const std::string &letters,
                                 const EinsumTerm &term) {
  if (type.getRank() != int64_t(letters.size()))
    return op->emitOpError() << "weight #" << index << " has rank "
                             << type.getRank() << " but its einsum operand '"
                             << letters << "' has " << letters.size()
                             << " indices";
  for (size_t k = 0; k < letters.size(); ++k) {
    int64_t want = term.sizes.at(letters[k]);
    if (type.getDimSize(k) != want)
      return op->emitOpError()
             << "weight #" << index << " dimension " << k << " (index '"
             << letters[k] << "') is " << type.getDimSize(k)
             << " but sizes gives " << want;
  }
  return success();
}

LogicalResult LayerOp::verify() {
  EinsumTerm term;
  std::string error;
  if (!termOf(*this, term, error))
    return emitOpError() << error;
  if (getWeights().size() != term.weights.size())
    return emitOpError() << "einsum '" << getSpec() << "' has "
                         << term.weights.size() << " weight operand(s) but "
                         << getWeights().size() << " were given";
  int64_t dIn = getDInAttr().getInt(), dOut = getDOutAttr().getInt();
  if (dIn < 1 || dOut < 1)
    return emitOpError() << "d_in and d_out must be positive";
  auto x = cast<RankedTensorType>(getInput().getType());
  auto y = cast<RankedTensorType>(getResult().getType());
  Type elt = x.getElementType();
  if (!isa<FloatType>(elt))
    return emitOpError() << "element type must be a float type, got " << elt;
  for (auto [k, w] : llvm::enumerate(getWeights())) {
    auto type = cast<RankedTensorType>(w.getType());
    if (type.getElementType() != elt)
      return emitOpError() << "weight #" << k << " has element type "
                           << type.getElementType() << ", input has " << elt;
    if (failed(checkWeight(*this, k, type, term.weights[k], term)))
      return failure();
  }
  if (y.getElementType() != elt)
    return emitOpError() << "result element type " << y.getElementType()
                         << " differs from the input's " << elt;
  if (x.getRank() < 1 || y.getRank() != x.getRank())
    return emitOpError() << "input and result must have the same rank >= 1 "
                            "(batch dimensions, then features)";
  int64_t last = x.getRank() - 1;
  if (!x.isDynamicDim(last) && x.getDimSize(last) != dIn)
    return emitOpError() << "input feature dimension is " << x.getDimSize(last)
                         << " but d_in is " << dIn;
  if (!y.isDynamicDim(last) && y.getDimSize(last) != dOut)
    return emitOpError() << "result feature dimension is "
                         << y.getDimSize(last) << " but d_out is " << dOut;
  for (int64_t k = 0; k < last; ++k)
    if (!x.isDynamicDim(k) && !y.isDynamicDim(k) &&
        x.getDimSize(k) != y.getDimSize(k))
      return emitOpError() << "batch dimension " << k << " differs: input "
                           << x.getDimSize(k) << ", result " << y.getDimSize(k);
  if (auto theta = getTheta()) {
    if (theta->size() != kNumClasses)
      return emitOpError() << "theta must have 7 entries (α|β|γ|δ|ε|φ|ρ), got "
                           << theta->size();
    Theta t;
    for (int c = 0; c < kNumClasses; ++c)
      t[c] = (*theta)[c];
    auto checked = checkTheta(t);
    if (!checked)
      return emitOpError() << "theta: " << checked.error();
  }
  if (getExperts() || getTopK()) {
    if (!getExperts() || !getTopK())
      return emitOpError() << "experts and top_k must be given together";
    if (getTopKAttr().getInt() < 1 ||
        getTopKAttr().getInt() > getExpertsAttr().getInt())
      return emitOpError() << "top_k = " << *getTopK()
                           << " must be in [1, experts = " << *getExperts()
                           << "]";
  }
  return success();
}

LogicalResult ContractOp::verify() {
  auto t = parseEinsumLetters(getSpec().str());
  if (!t)
    return emitOpError() << t.error();
  if (t->weights.size() != 1)
    return emitOpError() << "spec '" << getSpec()
                         << "' must have exactly two operands before '->'";
  std::map<char, int64_t> extent;
  auto check = [&](StringRef what, Value v,
                   const std::string &letters) -> LogicalResult {
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getRank() != int64_t(letters.size()))
      return emitOpError() << what << " has rank " << type.getRank()
                           << " but '" << letters << "' names "
                           << letters.size() << " indices";
    for (size_t k = 0; k < letters.size(); ++k) {
      int64_t d = type.getDimSize(k);
      if (ShapedType::isDynamic(d))
        continue;
      auto [it, fresh] = extent.insert({letters[k], d});
      if (!fresh && it->second != d)
        return emitOpError() << "index '" << letters[k] << "' is "
                             << it->second << " in one operand but " << d
                             << " in the " << what;
    }
    return success();
  };
  if (failed(check("lhs", getLhs(), t->input)) ||
      failed(check("rhs", getRhs(), t->weights[0])) ||
      failed(check("result", getResult(), t->output)))
    return failure();
  Type elt = cast<RankedTensorType>(getLhs().getType()).getElementType();
  for (Value v : {getRhs(), getResult()})
    if (cast<RankedTensorType>(v.getType()).getElementType() != elt)
      return emitOpError() << "operands and result must share one element type";
  return success();
}

LogicalResult ReverseOp::verify() {
  auto type = cast<RankedTensorType>(getInput().getType());
  const int64_t dim = getDim();
  if (dim < 0 || dim >= type.getRank())
    return emitOpError() << "dim " << dim << " is outside the input's rank "
                         << type.getRank();
  if (type.isDynamicDim(dim))
    return emitOpError() << "dim " << dim << " of " << type
                         << " is dynamic: the reversal needs its extent";
  return success();
}

llvm::ArrayRef<llvm::StringLiteral> unaryKinds() {
  static const llvm::StringLiteral kinds[] = {
      "identity", "exp", "sigmoid",   "silu",         "softplus",  "rsqrt",
      "sin",      "cos", "silu_grad", "sigmoid_grad", "rsqrt_grad"};
  return kinds;
}

LogicalResult UnaryOp::verify() {
  if (!llvm::is_contained(unaryKinds(), getKind())) {
    std::string known;
    for (llvm::StringRef k : unaryKinds())
      known += (known.empty() ? "" : ", ") + k.str();
    return emitOpError() << "kind \"" << getKind() << "\" is not one of "
                         << known;
  }
  auto type = cast<RankedTensorType>(getInput().getType());
  if (!isa<FloatType>(type.getElementType()))
    return emitOpError() << "takes a tensor of floats, got " << type;
  if (!std::isfinite(getScale().convertToDouble()) ||
      !std::isfinite(getShift().convertToDouble()))
    return emitOpError() << "scale and shift must be finite";
  return success();
}

LogicalResult RouteOp::verify() {
  auto logits = cast<RankedTensorType>(getLogits().getType());
  if (logits.getRank() != 2 || logits.isDynamicDim(1))
    return emitOpError() << "logits must be [batch, experts] with a static "
                            "expert count, got "
                         << logits;
  const int64_t experts = logits.getDimSize(1), k = getTopKAttr().getInt();
  if (k < 1 || k > experts)
    return emitOpError() << "top_k = " << k << " must be in [1, experts = "
                         << experts << "]";
  for (auto [what, v] : {std::pair<const char *, Value>{"gates", getGates()},
                         {"experts", getExperts()}}) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != 2 || (!t.isDynamicDim(1) && t.getDimSize(1) != k) ||
        (!t.isDynamicDim(0) && !logits.isDynamicDim(0) &&
         t.getDimSize(0) != logits.getDimSize(0)))
      return emitOpError() << what << " must be [batch, top_k = " << k
                           << "], got " << t;
  }
  if (cast<RankedTensorType>(getAuxLoss().getType()).getRank() != 0)
    return emitOpError() << "aux_loss must be a rank-0 tensor";
  return success();
}

// What moe_layer and moe_layer_grad share: the term, experts and top_k, the
// router and weight types, and x [batch, d_in].
template <class Op>
static LogicalResult verifyMoeOperands(Op op, EinsumTerm &term) {
  std::string error;
  if (!termOf(op.getSpec(), op.getSizes(), term, error))
    return op.emitOpError() << error;
  if (term.weights.size() != 2 || op.getWeights().size() != 2)
    return op.emitOpError()
           << "a BTT-MoE einsum has exactly two weights; '" << op.getSpec()
           << "' names " << term.weights.size() << " and "
           << op.getWeights().size() << " are given";
  const char rank = rankLetter(term);
  const int64_t experts = op.getExpertsAttr().getInt(),
                k = op.getTopKAttr().getInt();
  if (!rank)
    return op.emitOpError() << "'" << op.getSpec()
                            << "' has no rank letter (in both weights, in "
                               "neither x nor y) to index the experts";
  if (term.sizes.at(rank) != experts)
    return op.emitOpError() << "rank letter '" << rank << "' has size "
                            << term.sizes.at(rank)
                            << " but experts = " << experts;
  if (k < 1 || k > experts)
    return op.emitOpError() << "top_k = " << k << " must be in [1, experts = "
                            << experts << "]";
  const int64_t dIn = op.getDInAttr().getInt();
  auto x = cast<RankedTensorType>(op.getInput().getType());
  auto router = cast<RankedTensorType>(op.getRouter().getType());
  Type elt = x.getElementType();
  if (!isa<FloatType>(elt))
    return op.emitOpError() << "element type must be a float type, got "
                            << elt;
  if (router.getRank() != 2 || router.getDimSize(0) != dIn ||
      router.getDimSize(1) != experts)
    return op.emitOpError() << "router must be [d_in = " << dIn
                            << ", experts = " << experts << "], got "
                            << router;
  for (auto [i, w] : llvm::enumerate(op.getWeights())) {
    auto type = cast<RankedTensorType>(w.getType());
    if (type.getElementType() != elt || router.getElementType() != elt)
      return op.emitOpError() << "router and weights must share the input's "
                                 "element type "
                              << elt;
    if (failed(checkWeight(op, i, type, term.weights[i], term)))
      return failure();
  }
  if (x.getRank() != 2 || (!x.isDynamicDim(1) && x.getDimSize(1) != dIn))
    return op.emitOpError() << "input must be [batch, d_in = " << dIn << "]";
  return success();
}

// `v` is [batch, d_out] of element type `elt`.
static bool isOutput(Value v, int64_t dOut, Type elt) {
  auto t = cast<RankedTensorType>(v.getType());
  return t.getRank() == 2 && t.getElementType() == elt &&
         (t.isDynamicDim(1) || t.getDimSize(1) == dOut);
}

LogicalResult MoeLayerOp::verify() {
  EinsumTerm term;
  if (failed(verifyMoeOperands(*this, term)))
    return failure();
  const int64_t dOut = getDOutAttr().getInt();
  if (!isOutput(getResult(), dOut,
                cast<RankedTensorType>(getInput().getType()).getElementType()))
    return emitOpError() << "result must be [batch, d_out = " << dOut
                         << "] of the input's element type";
  if (cast<RankedTensorType>(getAuxLoss().getType()).getRank() != 0)
    return emitOpError() << "aux_loss must be a rank-0 tensor";
  return success();
}

LogicalResult MoeLayerGradOp::verify() {
  EinsumTerm term;
  if (failed(verifyMoeOperands(*this, term)))
    return failure();
  const int64_t dOut = getDOutAttr().getInt();
  Type elt = cast<RankedTensorType>(getInput().getType()).getElementType();
  if (!isOutput(getDy(), dOut, elt))
    return emitOpError() << "dy must be [batch, d_out = " << dOut
                         << "] of the input's element type";
  // daux has the type of the layer's aux loss (f32 for any input type).
  auto daux = cast<RankedTensorType>(getDaux().getType());
  if (daux.getRank() != 0 || !isa<FloatType>(daux.getElementType()))
    return emitOpError() << "daux must be a rank-0 tensor of a float type";
  if (getDinput().getType() != getInput().getType() ||
      getDrouter().getType() != getRouter().getType() ||
      getDweights().getTypes() != getWeights().getTypes())
    return emitOpError() << "each gradient must have its operand's type";
  return success();
}

namespace {
// The four chunk_decays result types for a[n, c, q, h]: within
// [n, h, c, q, q], to_end and from_start [n, h, c, q], chunk [n, h, c].
LogicalResult verifyDecayTypes(Operation *op, Value a, TypeRange results,
                               ArrayRef<StringRef> names) {
  auto at = cast<RankedTensorType>(a.getType());
  if (at.getRank() != 4)
    return op->emitOpError()
           << "a must be [sequences, chunks, chunk steps, heads], got " << at;
  const int64_t n = at.getDimSize(0), c = at.getDimSize(1),
                q = at.getDimSize(2), h = at.getDimSize(3);
  if (ShapedType::isDynamic(c) || ShapedType::isDynamic(q) ||
      ShapedType::isDynamic(h) || c < 1 || q < 1 || h < 1)
    return op->emitOpError() << "a's chunks, chunk steps and heads must be "
                                "static and positive, got "
                             << at;
  const SmallVector<int64_t> shapes[4] = {
      {n, h, c, q, q}, {n, h, c, q}, {n, h, c, q}, {n, h, c}};
  for (size_t k = 0; k < 4; ++k) {
    auto t = cast<RankedTensorType>(results[k]);
    if (t.getElementType() != at.getElementType() ||
        failed(verifyCompatibleShape(t.getShape(), shapes[k])))
      return op->emitOpError()
             << names[k] << " must be "
             << RankedTensorType::get(shapes[k], at.getElementType())
             << ", got " << t;
  }
  return success();
}
} // namespace

LogicalResult ChunkDecaysOp::verify() {
  return verifyDecayTypes(*this, getA(), getResultTypes(),
                          {"within", "to_end", "from_start", "chunk"});
}

LogicalResult ChunkDecaysGradOp::verify() {
  if (getDa().getType() != getA().getType())
    return emitOpError() << "da must have a's type";
  return verifyDecayTypes(
      *this, getA(),
      TypeRange{getDwithin().getType(), getDtoEnd().getType(),
                getDfromStart().getType(), getDchunk().getType()},
      {"dwithin", "dto_end", "dfrom_start", "dchunk"});
}

namespace {
// states [n, c, h, p, k] and decay [n, h, c] of one element type, c and h
// static and agreeing.
LogicalResult verifyScanTypes(Operation *op, Value states, Value decay) {
  auto st = cast<RankedTensorType>(states.getType());
  auto dt = cast<RankedTensorType>(decay.getType());
  if (st.getRank() != 5)
    return op->emitOpError() << "states must be [sequences, chunks, heads, "
                                "head_dim, state], got "
                             << st;
  const int64_t c = st.getDimSize(1), h = st.getDimSize(2);
  if (ShapedType::isDynamic(c) || ShapedType::isDynamic(h) || c < 1 ||
      h < 1)
    return op->emitOpError() << "states' chunks and heads must be static and "
                                "positive, got "
                             << st;
  const SmallVector<int64_t> want = {st.getDimSize(0), h, c};
  if (dt.getElementType() != st.getElementType() ||
      failed(verifyCompatibleShape(dt.getShape(), want)))
    return op->emitOpError()
           << "decay must be "
           << RankedTensorType::get(want, st.getElementType()) << ", got "
           << dt;
  return success();
}
} // namespace

LogicalResult ChunkScanOp::verify() {
  if (failed(verifyScanTypes(*this, getStates(), getDecay())))
    return failure();
  if (getEntering().getType() != getStates().getType())
    return emitOpError() << "entering must have the states' type";
  return success();
}

LogicalResult ChunkScanGradOp::verify() {
  if (failed(verifyScanTypes(*this, getStates(), getDecay())))
    return failure();
  if (getDentering().getType() != getStates().getType() ||
      getDstates().getType() != getStates().getType() ||
      getDdecay().getType() != getDecay().getType())
    return emitOpError() << "dentering and dstates must have the states' "
                            "type, ddecay the decay's";
  return success();
}

} // namespace einstruct
