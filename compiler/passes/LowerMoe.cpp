// --einstruct-lower-moe: a BTT-MoE layer becomes the router layer, routing
// loops, a counting sort of the (token, slot) pairs by expert and, per
// expert, its rank-1 layer on its gathered rows only, added into y with the
// gates. Its gradient (einstruct.moe_layer_grad) walks the same groups:
// per expert the rank-1 layer's gradients on its rows, the gates' gradients,
// then the routing's and the router's. Everything stays on tensors, so the
// CPU pipeline lowers the result like any other layer.
#include "LayerGradient.h"
#include "Passes.h"
#include "compiler/ir/EmitLayer.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"
#include "search/Routing.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace einstruct {
#define GEN_PASS_DEF_LOWERMOE
#include "Passes.h.inc"

namespace {

using mlir::ImplicitLocOpBuilder;
using mlir::Value;
using mlir::ValueRange;
namespace arith = mlir::arith;
namespace scf = mlir::scf;
namespace tensor = mlir::tensor;

using Body = llvm::function_ref<llvm::SmallVector<Value>(
    ImplicitLocOpBuilder &, Value, ValueRange)>;

// scf.for iv in [lb, ub) carrying `init`; `body` returns what to yield.
ValueRange loop(ImplicitLocOpBuilder &b, Value lb, Value ub, ValueRange init,
                Body body) {
  Value one = arith::ConstantIndexOp::create(b, 1);
  auto f = scf::ForOp::create(
      b, lb, ub, one, init,
      [&](mlir::OpBuilder &ob, mlir::Location loc, Value iv, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, ob);
        scf::YieldOp::create(ib, body(ib, iv, args));
      });
  return f.getResults();
}

Value index(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}
Value f64(ImplicitLocOpBuilder &b, double v) {
  return arith::ConstantFloatOp::create(b, b.getF64Type(), llvm::APFloat(v));
}
Value at(ImplicitLocOpBuilder &b, Value t, llvm::ArrayRef<Value> idx) {
  return tensor::ExtractOp::create(b, t, idx);
}
Value put(ImplicitLocOpBuilder &b, Value v, Value t, llvm::ArrayRef<Value> idx) {
  return tensor::InsertOp::create(b, v, t, idx);
}
// A tensor of `type` (dynamic extents from `dynamic`) filled with `value`.
Value filled(ImplicitLocOpBuilder &b, mlir::RankedTensorType type,
             ValueRange dynamic, Value value) {
  Value empty = tensor::EmptyOp::create(b, type, dynamic);
  return mlir::linalg::FillOp::create(b, value, empty).getResult(0);
}
Value toIndex(ImplicitLocOpBuilder &b, Value v) {
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}
using Term = llvm::function_ref<Value(ImplicitLocOpBuilder &, Value)>;
// Σ_{i in [lb, ub)} term(i) in f64, from 0 in index order (as the C++
// reference loops add).
Value sumF64(ImplicitLocOpBuilder &b, Value lb, Value ub, Term term) {
  return loop(b, lb, ub, {f64(b, 0)},
              [&](ImplicitLocOpBuilder &b, Value i, ValueRange a) {
                return llvm::SmallVector<Value>{
                    arith::AddFOp::create(b, a[0], term(b, i))};
              })[0];
}

// Token t's logit for expert e, widened to f64.
Value wideLogit(ImplicitLocOpBuilder &b, Value logits, Value t, Value e) {
  return arith::ExtFOp::create(b, b.getF64Type(), at(b, logits, {t, e}));
}

// logsumexp of token t's E logits as routeTokens computes it: max + log Σ
// exp(l − max), with std::max(a, b) as a < b ? b : a.
Value logSumExp(ImplicitLocOpBuilder &b, Value logits, Value t, int64_t E) {
  Value zero = index(b, 0);
  Value mx = loop(b, index(b, 1), index(b, E), {wideLogit(b, logits, t, zero)},
                  [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
                    Value l = wideLogit(b, logits, t, e);
                    Value less = arith::CmpFOp::create(
                        b, arith::CmpFPredicate::OLT, a[0], l);
                    return llvm::SmallVector<Value>{
                        arith::SelectOp::create(b, less, l, a[0])};
                  })[0];
  Value sum = sumF64(b, zero, index(b, E), [&](ImplicitLocOpBuilder &b, Value e) {
    return mlir::math::ExpOp::create(
        b, arith::SubFOp::create(b, wideLogit(b, logits, t, e), mx));
  });
  return arith::AddFOp::create(b, mx, mlir::math::LogOp::create(b, sum));
}

// The router softmax p_e = exp(l_e − lse) of token t.
Value probability(ImplicitLocOpBuilder &b, Value logits, Value t, Value e,
                  Value lse) {
  return mlir::math::ExpOp::create(
      b, arith::SubFOp::create(b, wideLogit(b, logits, t, e), lse));
}

// einstruct.route → loops over tokens, with routeTokens' arithmetic
// (search/Routing.cpp) op for op in f64, so both give the same bits.
void lowerRoute(RouteOp op) {
  ImplicitLocOpBuilder b(op.getLoc(), op);
  const int64_t K = op.getTopK();
  const int64_t E =
      mlir::cast<mlir::RankedTensorType>(op.getLogits().getType()).getDimSize(1);
  auto f64t = b.getF64Type();
  Value logits = op.getLogits(), zero = index(b, 0),
        nE = index(b, E), nK = index(b, K);
  Value n = tensor::DimOp::create(b, logits, 0);
  auto dynamicOf = [&](Value result) {
    auto type = mlir::cast<mlir::RankedTensorType>(result.getType());
    return type.isDynamicDim(0) ? llvm::SmallVector<Value>{n}
                                : llvm::SmallVector<Value>{};
  };
  Value gates0 = tensor::EmptyOp::create(
      b, mlir::cast<mlir::RankedTensorType>(op.getGates().getType()),
      dynamicOf(op.getGates()));
  Value experts0 = tensor::EmptyOp::create(
      b, mlir::cast<mlir::RankedTensorType>(op.getExperts().getType()),
      dynamicOf(op.getExperts()));
  Value pSum0 = filled(b, mlir::RankedTensorType::get({E}, f64t), {},
                       f64(b, 0));
  Value counts0 = filled(b, mlir::RankedTensorType::get({E}, b.getI64Type()),
                         {}, arith::ConstantIntOp::create(b, 0, 64));
  auto perToken = [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc)
      -> llvm::SmallVector<Value> {
    // Builders are passed down: ops go where the calling loop body is.
    auto logit = [&](ImplicitLocOpBuilder &b, Value e) {
      return at(b, logits, {t, e});
    };
    Value lse = logSumExp(b, logits, t, E);
    auto prob = [&](ImplicitLocOpBuilder &b, Value e) {
      return probability(b, logits, t, e, lse);
    };
    Value lseSq = arith::AddFOp::create(
        b, acc[3], arith::MulFOp::create(b, lse, lse));
    Value pSum = loop(b, zero, nE, {acc[2]},
                      [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
                        Value s = arith::AddFOp::create(b, at(b, a[0], {e}),
                                                        prob(b, e));
                        return llvm::SmallVector<Value>{put(b, s, a[0], {e})};
                      })[0];
    // Top-k by repeated arg-max; a strict '>' keeps the lower index on ties.
    auto picked = loop(
        b, zero, nK, {acc[1], acc[4]},
        [&](ImplicitLocOpBuilder &b, Value s, ValueRange a) {
          Value experts = a[0];
          Value none = arith::ConstantIntOp::create(b, -1, 64),
                zero64 = arith::ConstantIntOp::create(b, 0, 64);
          Value best = loop(
              b, zero, nE, {none},
              [&](ImplicitLocOpBuilder &b, Value e, ValueRange best) {
                Value e64 = arith::IndexCastOp::create(b, b.getI64Type(), e);
                Value taken = loop(
                    b, zero, s, {arith::ConstantIntOp::create(b, 0, 1)},
                    [&](ImplicitLocOpBuilder &b, Value j, ValueRange f) {
                      Value ej = arith::ExtSIOp::create(
                          b, b.getI64Type(), at(b, experts, {t, j}));
                      Value same = arith::CmpIOp::create(
                          b, arith::CmpIPredicate::eq, ej, e64);
                      return llvm::SmallVector<Value>{
                          arith::OrIOp::create(b, f[0], same)};
                    })[0];
                Value unset = arith::CmpIOp::create(
                    b, arith::CmpIPredicate::slt, best[0], zero64);
                Value safe =
                    toIndex(b, arith::MaxSIOp::create(b, best[0], zero64));
                Value greater = arith::CmpFOp::create(
                    b, arith::CmpFPredicate::OGT, logit(b, e), logit(b, safe));
                Value better = arith::OrIOp::create(b, unset, greater);
                Value free = arith::XOrIOp::create(
                    b, taken, arith::ConstantIntOp::create(b, 1, 1));
                Value take = arith::AndIOp::create(b, free, better);
                return llvm::SmallVector<Value>{
                    arith::SelectOp::create(b, take, e64, best[0])};
              })[0];
          Value e = toIndex(b, best);
          Value counts = put(
              b,
              arith::AddIOp::create(b, at(b, a[1], {e}),
                                    arith::ConstantIntOp::create(b, 1, 64)),
              a[1], {e});
          Value chosen = arith::TruncIOp::create(b, b.getI32Type(), best);
          return llvm::SmallVector<Value>{put(b, chosen, experts, {t, s}),
                                          counts};
        });
    Value experts = picked[0];
    auto selected = [&](ImplicitLocOpBuilder &b, Value s) -> Value {
      return toIndex(b, at(b, experts, {t, s}));
    };
    // Gates: softmax over the selected logits (p renormalised) + 1e-6.
    Value selSum = sumF64(b, zero, nK, [&](ImplicitLocOpBuilder &b, Value s) {
      return prob(b, selected(b, s));
    });
    Value gates =
        loop(b, zero, nK, {acc[0]},
             [&](ImplicitLocOpBuilder &b, Value s, ValueRange a) {
               Value g = arith::AddFOp::create(
                   b,
                   arith::DivFOp::create(b, prob(b, selected(b, s)), selSum),
                   f64(b, kGateEpsilon));
               Value g32 = arith::TruncFOp::create(b, b.getF32Type(), g);
               return llvm::SmallVector<Value>{put(b, g32, a[0], {t, s})};
             })[0];
    return {gates, experts, pSum, lseSq, picked[1]};
  };
  auto tokens = loop(b, zero, n, {gates0, experts0, pSum0, f64(b, 0), counts0},
                     perToken);
  // aux = E·Σ_e (p̂_e/T)·(count_e/(T·k)) + 0.1·lseSq/T, and 0 for no tokens.
  Value T = arith::UIToFPOp::create(
      b, f64t, arith::IndexCastUIOp::create(b, b.getI64Type(), n));
  Value TK = arith::MulFOp::create(b, T, f64(b, double(K)));
  Value balance = sumF64(b, zero, nE, [&](ImplicitLocOpBuilder &b, Value e) {
    Value p = arith::DivFOp::create(b, at(b, tokens[2], {e}), T);
    Value c = arith::SIToFPOp::create(b, f64t, at(b, tokens[4], {e}));
    Value f = arith::DivFOp::create(b, c, TK);
    return arith::MulFOp::create(b, p, f);
  });
  Value aux = arith::AddFOp::create(
      b, arith::MulFOp::create(b, f64(b, double(E)), balance),
      arith::DivFOp::create(b, arith::MulFOp::create(b, f64(b, 0.1), tokens[3]),
                            T));
  Value some = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, n, zero);
  aux = arith::SelectOp::create(b, some, aux, f64(b, 0));
  Value aux32 = arith::TruncFOp::create(b, b.getF32Type(), aux);
  Value auxT = tensor::FromElementsOp::create(
      b, mlir::cast<mlir::RankedTensorType>(op.getAuxLoss().getType()),
      ValueRange{aux32});
  op.replaceAllUsesWith(ValueRange{tokens[0], tokens[1], auxT});
  op.erase();
}

// The spec's sizes as an attribute, with the rank letter's size replaced.
mlir::DictionaryAttr withSize(mlir::DictionaryAttr sizes, char letter,
                              int64_t size) {
  mlir::Builder b(sizes.getContext());
  llvm::SmallVector<mlir::NamedAttribute> out;
  for (auto a : sizes)
    out.push_back(a.getName().str() == std::string(1, letter)
                      ? b.getNamedAttr(a.getName(), b.getI64IntegerAttr(size))
                      : a);
  return b.getDictionaryAttr(out);
}

// The router, the routing and a stable counting sort of the (token, slot)
// pairs by expert: expert e's slots are order[offsets[e] .. offsets[e + 1]),
// in slot (so token) order. Slot s = token·k + j.
struct Grouping {
  LayerOp router; // logits [T, E] = x · router
  RouteOp route;
  Value slotExpert, slotGate; // [T·k]
  Value counts;               // [E] slots per expert
  Value offsets;              // [E + 1]
  Value order;                // [T·k]
};

Grouping groupByExpert(ImplicitLocOpBuilder &b, Value x, Value router,
                       int64_t dIn, int64_t E, int64_t K, mlir::Type auxType) {
  auto f32 = b.getF32Type();
  auto idxT = b.getIndexType();
  const int64_t dyn = mlir::ShapedType::kDynamic;
  const int64_t batch =
      mlir::cast<mlir::RankedTensorType>(x.getType()).getDimSize(0);
  Value zero = index(b, 0), one = index(b, 1);
  Grouping g;
  g.router = routerLogits(b, b.getLoc(), x, router, dIn, E).getDefiningOp<LayerOp>();
  g.route = RouteOp::create(
      b, mlir::RankedTensorType::get({batch, K}, f32),
      mlir::RankedTensorType::get({batch, K}, b.getI32Type()), auxType,
      g.router.getResult(), b.getI64IntegerAttr(K));
  llvm::SmallVector<mlir::ReassociationIndices> flat = {{0, 1}};
  g.slotExpert =
      tensor::CollapseShapeOp::create(b, g.route.getExperts(), flat);
  g.slotGate = tensor::CollapseShapeOp::create(b, g.route.getGates(), flat);
  Value slots = arith::MulIOp::create(b, tensor::DimOp::create(b, x, 0),
                                      index(b, K));
  auto expertOf = [&](ImplicitLocOpBuilder &b, Value s) {
    return toIndex(b, at(b, g.slotExpert, {s}));
  };
  auto vec = [&](int64_t size) {
    return mlir::RankedTensorType::get({size}, idxT);
  };
  g.counts = loop(b, zero, slots, {filled(b, vec(E), {}, zero)},
                  [&](ImplicitLocOpBuilder &b, Value s, ValueRange a) {
                    Value e = expertOf(b, s);
                    Value c = arith::AddIOp::create(b, at(b, a[0], {e}), one);
                    return llvm::SmallVector<Value>{put(b, c, a[0], {e})};
                  })[0];
  auto starts = loop(b, zero, index(b, E),
                     {tensor::EmptyOp::create(b, vec(E + 1), ValueRange{}),
                      zero},
                     [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
                       Value next = arith::AddIOp::create(b, a[1],
                                                          at(b, g.counts, {e}));
                       return llvm::SmallVector<Value>{put(b, a[1], a[0], {e}),
                                                       next};
                     });
  g.offsets = put(b, starts[1], starts[0], {index(b, E)});
  Value cursor0 = tensor::ExtractSliceOp::create(
      b, vec(E), g.offsets,
      llvm::ArrayRef<mlir::OpFoldResult>{b.getIndexAttr(0)},
      llvm::ArrayRef<mlir::OpFoldResult>{b.getIndexAttr(E)},
      llvm::ArrayRef<mlir::OpFoldResult>{b.getIndexAttr(1)});
  Value order0 = tensor::EmptyOp::create(b, vec(dyn), ValueRange{slots});
  g.order = loop(b, zero, slots, {order0, cursor0},
                 [&](ImplicitLocOpBuilder &b, Value s, ValueRange a) {
                   Value e = expertOf(b, s);
                   Value p = at(b, a[1], {e});
                   Value next = arith::AddIOp::create(b, p, one);
                   return llvm::SmallVector<Value>{put(b, s, a[0], {p}),
                                                   put(b, next, a[1], {e})};
                 })[0];
  return g;
}

using ExpertBody = llvm::function_ref<llvm::SmallVector<Value>(
    ImplicitLocOpBuilder &, Value e, Value start, Value count, ValueRange acc)>;

// Experts in index order; `body` runs for those with slots (count > 0) and
// returns the new `acc`, idle experts leave it as it is.
ValueRange forEachBusyExpert(ImplicitLocOpBuilder &b, const Grouping &g,
                             int64_t E, ValueRange init, ExpertBody body) {
  return loop(
      b, index(b, 0), index(b, E), init,
      [&](ImplicitLocOpBuilder &b, Value e, ValueRange acc)
          -> llvm::SmallVector<Value> {
        Value start = at(b, g.offsets, {e});
        Value end =
            at(b, g.offsets, {arith::AddIOp::create(b, e, index(b, 1))});
        Value c = arith::SubIOp::create(b, end, start);
        Value busy = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, c,
                                           index(b, 0));
        auto ifOp = scf::IfOp::create(b, acc.getTypes(), busy, true);
        mlir::OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&ifOp.getElseRegion().front());
        scf::YieldOp::create(b, acc);
        b.setInsertionPointToStart(&ifOp.getThenRegion().front());
        scf::YieldOp::create(b, body(b, e, start, c, acc));
        return llvm::SmallVector<Value>(ifOp.getResults());
      });
}

// Row i of an expert's rows is slot order[start + i], token slot / k.
struct RowSlot {
  Value slot, token;
};
RowSlot rowSlot(ImplicitLocOpBuilder &b, const Grouping &g, Value start,
                Value i, int64_t K) {
  Value s = at(b, g.order, {arith::AddIOp::create(b, start, i)});
  return {s, arith::DivUIOp::create(b, s, index(b, K))};
}

// Row r of a [rows, width] tensor as [1, width], and back into one.
mlir::RankedTensorType rowType(Value t) {
  auto type = mlir::cast<mlir::RankedTensorType>(t.getType());
  return mlir::RankedTensorType::get({1, type.getDimSize(1)},
                                     type.getElementType());
}
struct RowPlace {
  llvm::SmallVector<mlir::OpFoldResult> offsets, sizes, strides;
};
RowPlace rowPlace(ImplicitLocOpBuilder &b, Value r, int64_t width) {
  return {{r, b.getIndexAttr(0)},
          {b.getIndexAttr(1), b.getIndexAttr(width)},
          {b.getIndexAttr(1), b.getIndexAttr(1)}};
}
Value takeRow(ImplicitLocOpBuilder &b, Value t, Value r) {
  auto type = rowType(t);
  RowPlace p = rowPlace(b, r, type.getDimSize(1));
  return tensor::ExtractSliceOp::create(b, type, t, p.offsets, p.sizes,
                                        p.strides);
}
Value putRow(ImplicitLocOpBuilder &b, Value row, Value t, Value r) {
  RowPlace p = rowPlace(b, r, rowType(t).getDimSize(1));
  return tensor::InsertSliceOp::create(b, row, t, p.offsets, p.sizes,
                                       p.strides);
}

// [1, width] rows: v[0] · scale (+ v[1] when `add`), elementwise.
Value scaledRow(ImplicitLocOpBuilder &b, Value row, Value into, Value scale,
                bool add) {
  auto id = b.getMultiDimIdentityMap(2);
  auto par = mlir::utils::IteratorType::parallel;
  llvm::SmallVector<Value> ins = {row};
  if (add)
    ins.push_back(into);
  llvm::SmallVector<mlir::AffineMap> maps(ins.size() + 1, id);
  auto op = mlir::linalg::GenericOp::create(
      b, into.getType(), ins, ValueRange{into}, maps,
      llvm::ArrayRef<mlir::utils::IteratorType>{par, par},
      [&](mlir::OpBuilder &ob, mlir::Location loc, ValueRange v) {
        Value r = scale ? arith::MulFOp::create(ob, loc, scale, v[0]).getResult()
                        : v[0];
        if (add)
          r = arith::AddFOp::create(ob, loc, v[1], r);
        mlir::linalg::YieldOp::create(ob, loc, ValueRange{r});
      });
  return op.getResult(0);
}

// An expert's rows [count, width] of src [T, width], each times its slot's
// gate when `gates` is given.
Value gatherRows(ImplicitLocOpBuilder &b, const Grouping &g, Value src,
                 Value start, Value count, int64_t K, Value gates) {
  auto rowT = rowType(src);
  Value rows0 = tensor::EmptyOp::create(
      b,
      mlir::RankedTensorType::get(
          {mlir::ShapedType::kDynamic, rowT.getDimSize(1)},
          rowT.getElementType()),
      ValueRange{count});
  return loop(
      b, index(b, 0), count, {rows0},
      [&](ImplicitLocOpBuilder &b, Value i, ValueRange r) {
        RowSlot where = rowSlot(b, g, start, i, K);
        Value row = takeRow(b, src, where.token);
        if (gates)
          row = scaledRow(b, row, tensor::EmptyOp::create(b, rowT, ValueRange{}),
                          at(b, gates, {where.slot}), false);
        return llvm::SmallVector<Value>{putRow(b, row, r[0], i)};
      })[0];
}

// acc[token of row i] += rows[i] (times its slot's gate when `gates` is
// given), rows in order.
Value addRows(ImplicitLocOpBuilder &b, const Grouping &g, Value acc,
              Value rows, Value start, Value count, int64_t K, Value gates) {
  return loop(
      b, index(b, 0), count, {acc},
      [&](ImplicitLocOpBuilder &b, Value i, ValueRange r) {
        RowSlot where = rowSlot(b, g, start, i, K);
        Value sum = scaledRow(b, takeRow(b, rows, i), takeRow(b, r[0], where.token),
                              gates ? at(b, gates, {where.slot}) : Value(), true);
        return llvm::SmallVector<Value>{putRow(b, sum, r[0], where.token)};
      })[0];
}

// Expert e's part of a weight: its rank letter (at `pos`) cut to e.
struct ExpertSlice {
  mlir::RankedTensorType type;
  llvm::SmallVector<mlir::OpFoldResult> offsets, sizes, strides;
};
ExpertSlice expertSlice(ImplicitLocOpBuilder &b, Value w, size_t pos,
                        Value e) {
  auto type = mlir::cast<mlir::RankedTensorType>(w.getType());
  ExpertSlice out;
  llvm::SmallVector<int64_t> shape(type.getShape());
  for (int64_t d = 0; d < type.getRank(); ++d) {
    const bool rank = size_t(d) == pos;
    out.offsets.push_back(rank ? mlir::OpFoldResult(e) : b.getIndexAttr(0));
    out.sizes.push_back(b.getIndexAttr(rank ? 1 : shape[size_t(d)]));
    out.strides.push_back(b.getIndexAttr(1));
  }
  shape[pos] = 1;
  out.type = mlir::RankedTensorType::get(shape, type.getElementType());
  return out;
}

// The term of a moe op, checked for what the lowering supports.
template <class Op>
mlir::LogicalResult moeTerm(Op op, EinsumTerm &term) {
  std::string error;
  if (!termOf(op.getSpec(), op.getSizes(), term, error))
    return op.emitOpError() << error;
  auto x = mlir::cast<mlir::RankedTensorType>(op.getInput().getType());
  if (!x.getElementType().isF32())
    return op.emitOpError() << "is lowered for f32 only, got "
                            << x.getElementType();
  return mlir::success();
}

// Expert e's slices of the weights and its rank-1 layer on `rows`.
template <class Op>
LayerOp expertLayer(ImplicitLocOpBuilder &b, Op op, const EinsumTerm &term,
                    Value e, Value rows, llvm::SmallVector<Value> &weights) {
  const char rank = rankLetter(term);
  for (auto [k, w] : llvm::enumerate(op.getWeights())) {
    ExpertSlice sl = expertSlice(b, w, term.weights[k].find(rank), e);
    weights.push_back(tensor::ExtractSliceOp::create(
        b, sl.type, w, sl.offsets, sl.sizes, sl.strides));
  }
  auto outType = mlir::RankedTensorType::get(
      {mlir::ShapedType::kDynamic, int64_t(op.getDOut())}, b.getF32Type());
  return LayerOp::create(b, outType, rows, weights, op.getSpecAttr(),
                         withSize(op.getSizes(), rank, 1), op.getDInAttr(),
                         op.getDOutAttr(), nullptr, nullptr, nullptr);
}

// A zero-filled tensor of `type`, its batch extent (if dynamic) `n`.
Value zerosLike(ImplicitLocOpBuilder &b, mlir::Type t, Value n) {
  auto type = mlir::cast<mlir::RankedTensorType>(t);
  llvm::SmallVector<Value> dynamic;
  if (type.getRank() > 0 && type.isDynamicDim(0))
    dynamic.push_back(n);
  return filled(b, type, dynamic,
                arith::ConstantOp::create(
                    b, b.getZeroAttr(type.getElementType())));
}

mlir::LogicalResult lowerMoe(MoeLayerOp op) {
  EinsumTerm term;
  if (mlir::failed(moeTerm(op, term)))
    return mlir::failure();
  const int64_t E = op.getExperts(), K = op.getTopK();
  ImplicitLocOpBuilder b(op.getLoc(), op);
  Value x = op.getInput();
  Grouping g = groupByExpert(b, x, op.getRouter(), op.getDIn(), E, K,
                             op.getAuxLoss().getType());
  // Each expert's rank-1 layer on its rows, gated rows added into y in
  // expert order, rows in token order (deterministic).
  Value y0 = zerosLike(b, op.getResult().getType(),
                       tensor::DimOp::create(b, x, 0));
  Value y = forEachBusyExpert(
      b, g, E, {y0},
      [&](ImplicitLocOpBuilder &b, Value e, Value start, Value c,
          ValueRange acc) -> llvm::SmallVector<Value> {
        Value xs = gatherRows(b, g, x, start, c, K, nullptr);
        llvm::SmallVector<Value> weights;
        LayerOp ys = expertLayer(b, op, term, e, xs, weights);
        return {addRows(b, g, acc[0], ys, start, c, K, g.slotGate)};
      })[0];
  op.replaceAllUsesWith(ValueRange{y, g.route.getAuxLoss()});
  op.erase();
  lowerRoute(g.route);
  return mlir::success();
}

// d(Σ_j dgate_j·gate_j + daux·aux)/d(logits) [T, E], token by token with
// routeBackward's arithmetic (search/Routing.cpp) in f64: the selected
// softmax's gradient, plus daux·∂aux/∂l with the selection counts held
// constant. `dgate` is [T·k], per slot.
Value routeGradient(ImplicitLocOpBuilder &b, const Grouping &g, Value logits,
                    Value dgate, Value daux, int64_t E, int64_t K) {
  auto f64t = b.getF64Type();
  Value zero = index(b, 0), n = tensor::DimOp::create(b, logits, 0);
  auto toF64 = [&](ImplicitLocOpBuilder &b, Value i) {
    return arith::SIToFPOp::create(
        b, f64t, arith::IndexCastOp::create(b, b.getI64Type(), i));
  };
  Value T = toF64(b, n), TK = toF64(b, arith::MulIOp::create(b, n, index(b, K)));
  Value w = arith::ExtFOp::create(b, f64t, at(b, daux, {}));
  Value dl0 = tensor::EmptyOp::create(
      b, mlir::cast<mlir::RankedTensorType>(logits.getType()), ValueRange{n});
  auto perToken = [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc)
      -> llvm::SmallVector<Value> {
    Value lse = logSumExp(b, logits, t, E);
    auto prob = [&](ImplicitLocOpBuilder &b, Value e) {
      return probability(b, logits, t, e, lse);
    };
    Value base = arith::MulIOp::create(b, t, index(b, K));
    auto slot = [&](ImplicitLocOpBuilder &b, Value s) -> Value {
      return arith::AddIOp::create(b, base, s);
    };
    auto selected = [&](ImplicitLocOpBuilder &b, Value s) {
      return toIndex(b, at(b, g.slotExpert, {slot(b, s)}));
    };
    auto dg = [&](ImplicitLocOpBuilder &b, Value s) {
      return arith::ExtFOp::create(b, f64t, at(b, dgate, {slot(b, s)}))
          .getResult();
    };
    auto sum = [&](ImplicitLocOpBuilder &b, Value ub, Term f) {
      return sumF64(b, zero, ub, f);
    };
    Value nK = index(b, K), nE = index(b, E);
    Value selSum = sum(b, nK, [&](ImplicitLocOpBuilder &b, Value s) {
      return prob(b, selected(b, s));
    });
    // ds_i = s_i·(dg_i − Σ_j s_j·dg_j) over the selected softmax s.
    auto share = [&](ImplicitLocOpBuilder &b, Value s) -> Value {
      return arith::DivFOp::create(b, prob(b, selected(b, s)), selSum);
    };
    Value sdg = sum(b, nK, [&](ImplicitLocOpBuilder &b, Value s) {
      return arith::MulFOp::create(b, share(b, s), dg(b, s));
    });
    auto fraction = [&](ImplicitLocOpBuilder &b, Value e) -> Value {
      return arith::DivFOp::create(b, toF64(b, at(b, g.counts, {e})), TK);
    };
    Value fp = sum(b, nE, [&](ImplicitLocOpBuilder &b, Value e) {
      return arith::MulFOp::create(b, fraction(b, e), prob(b, e));
    });
    Value dl = loop(
        b, zero, nE, {acc[0]},
        [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
          // The selected slot's part (experts are distinct within a token;
          // its share is p_e/selSum).
          Value p = prob(b, e);
          Value mine = sum(b, nK, [&](ImplicitLocOpBuilder &b, Value s) {
            Value same = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                               selected(b, s), e);
            Value part = arith::MulFOp::create(
                b, arith::DivFOp::create(b, p, selSum),
                arith::SubFOp::create(b, dg(b, s), sdg));
            return arith::SelectOp::create(b, same, part, f64(b, 0))
                .getResult();
          });
          // ∂aux/∂l_e = (E/T)·p_e·(f̂_e − Σ f̂·p) + (0.2/T)·lse·p_e
          Value balance = arith::MulFOp::create(
              b,
              arith::MulFOp::create(
                  b, arith::DivFOp::create(b, f64(b, double(E)), T), p),
              arith::SubFOp::create(b, fraction(b, e), fp));
          Value spread = arith::MulFOp::create(
              b,
              arith::MulFOp::create(b, arith::DivFOp::create(b, f64(b, 0.2), T),
                                    lse),
              p);
          Value total = arith::AddFOp::create(
              b, mine,
              arith::MulFOp::create(b, w,
                                    arith::AddFOp::create(b, balance, spread)));
          return llvm::SmallVector<Value>{put(
              b, arith::TruncFOp::create(b, b.getF32Type(), total), a[0],
              {t, e})};
        })[0];
    return {dl};
  };
  return loop(b, zero, n, {dl0}, perToken)[0];
}

mlir::LogicalResult lowerMoeGrad(MoeLayerGradOp op) {
  EinsumTerm term;
  if (mlir::failed(moeTerm(op, term)))
    return mlir::failure();
  auto daux = mlir::cast<mlir::RankedTensorType>(op.getDaux().getType());
  if (!daux.getElementType().isF32())
    return op.emitOpError() << "is lowered for an f32 daux only, got "
                            << daux.getElementType();
  const int64_t E = op.getExperts(), K = op.getTopK();
  ImplicitLocOpBuilder b(op.getLoc(), op);
  auto f32 = b.getF32Type();
  Value x = op.getInput(), dy = op.getDy();
  Value n = tensor::DimOp::create(b, x, 0);
  Grouping g = groupByExpert(b, x, op.getRouter(), op.getDIn(), E, K,
                             mlir::RankedTensorType::get({}, f32));
  // Per expert: its rows' dx (added per token), its weight slices'
  // gradients (from the gated dy), and each slot's dgate = <dy_t, ys_i>
  // (f64 sums, as MoeLayer's C++ backward).
  Value slots = arith::MulIOp::create(b, n, index(b, K));
  llvm::SmallVector<Value> init = {
      zerosLike(b, op.getDinput().getType(), n),
      tensor::EmptyOp::create(
          b, mlir::RankedTensorType::get({mlir::ShapedType::kDynamic}, f32),
          ValueRange{slots})};
  for (Value w : op.getWeights())
    init.push_back(zerosLike(b, w.getType(), n));
  const int64_t dOut = op.getDOut();
  mlir::Operation *failed = nullptr;
  auto grads = forEachBusyExpert(
      b, g, E, init,
      [&](ImplicitLocOpBuilder &b, Value e, Value start, Value c,
          ValueRange acc) -> llvm::SmallVector<Value> {
        Value xs = gatherRows(b, g, x, start, c, K, nullptr);
        Value dys = gatherRows(b, g, dy, start, c, K, g.slotGate);
        llvm::SmallVector<Value> weights;
        LayerOp ys = expertLayer(b, op, term, e, xs, weights);
        auto lg = layerGradients(b, b.getLoc(), ys, xs, weights, dys);
        if (mlir::failed(lg)) {
          failed = ys;
          return llvm::SmallVector<Value>(acc);
        }
        Value dgate = loop(
            b, index(b, 0), c, {acc[1]},
            [&](ImplicitLocOpBuilder &b, Value i, ValueRange a) {
              RowSlot where = rowSlot(b, g, start, i, K);
              Value dot = sumF64(
                  b, index(b, 0), index(b, dOut),
                  [&](ImplicitLocOpBuilder &b, Value j) -> Value {
                    auto wide = [&](Value v, Value r) {
                      return arith::ExtFOp::create(b, b.getF64Type(),
                                                   at(b, v, {r, j}));
                    };
                    return arith::MulFOp::create(b, wide(dy, where.token),
                                                 wide(ys, i));
                  });
              return llvm::SmallVector<Value>{put(
                  b, arith::TruncFOp::create(b, f32, dot), a[0], {where.slot})};
            })[0];
        llvm::SmallVector<Value> out = {
            addRows(b, g, acc[0], lg->dx, start, c, K, nullptr), dgate};
        const char rank = rankLetter(term);
        for (auto [k, w] : llvm::enumerate(op.getWeights())) {
          ExpertSlice sl = expertSlice(b, w, term.weights[k].find(rank), e);
          out.push_back(tensor::InsertSliceOp::create(
              b, lg->dw[k], acc[2 + k], sl.offsets, sl.sizes, sl.strides));
        }
        return out;
      });
  if (failed)
    return mlir::failure();
  // Then the routing's gradient and the router's: dx += dlogits·routerᵀ,
  // drouter = xᵀ·dlogits.
  Value dlogits = routeGradient(b, g, g.router.getResult(), grads[1],
                                op.getDaux(), E, K);
  auto rg = layerGradients(b, b.getLoc(), g.router, x, {op.getRouter()},
                           dlogits);
  if (mlir::failed(rg))
    return mlir::failure();
  llvm::SmallVector<Value> results = {
      arith::AddFOp::create(b, grads[0], rg->dx), rg->dw[0]};
  results.append(grads.begin() + 2, grads.end());
  op.replaceAllUsesWith(results);
  op.erase();
  lowerRoute(g.route);
  return mlir::success();
}

struct LowerMoePass : impl::LowerMoeBase<LowerMoePass> {
  void runOnOperation() override {
    llvm::SmallVector<mlir::Operation *> layers;
    getOperation()->walk([&](mlir::Operation *op) {
      if (mlir::isa<MoeLayerOp, MoeLayerGradOp>(op))
        layers.push_back(op);
    });
    for (mlir::Operation *op : layers) {
      auto lowered = mlir::isa<MoeLayerOp>(op)
                         ? lowerMoe(mlir::cast<MoeLayerOp>(op))
                         : lowerMoeGrad(mlir::cast<MoeLayerGradOp>(op));
      if (mlir::failed(lowered)) {
        signalPassFailure();
        return;
      }
    }
    llvm::SmallVector<RouteOp> routes;
    getOperation()->walk([&](RouteOp op) { routes.push_back(op); });
    for (RouteOp op : routes)
      lowerRoute(op);
  }
};

} // namespace
} // namespace einstruct
