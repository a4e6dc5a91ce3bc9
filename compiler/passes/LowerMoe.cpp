// --einstruct-lower-moe: a BTT-MoE layer becomes the router layer, routing
// loops, a counting sort of the (token, slot) pairs by expert and, per
// expert, its rank-1 layer on its gathered rows only, added into y with the
// gates. Everything stays on tensors, so the CPU pipeline lowers the result
// like any other layer.
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

// einstruct.route → loops over tokens, with routeTokens' arithmetic
// (search/Routing.cpp) op for op in f64, so both give the same bits.
void lowerRoute(RouteOp op) {
  ImplicitLocOpBuilder b(op.getLoc(), op);
  const int64_t K = op.getTopK();
  const int64_t E =
      mlir::cast<mlir::RankedTensorType>(op.getLogits().getType()).getDimSize(1);
  auto f64t = b.getF64Type();
  Value logits = op.getLogits(), zero = index(b, 0), one = index(b, 1),
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
    auto wide = [&](ImplicitLocOpBuilder &b, Value e) {
      return arith::ExtFOp::create(b, f64t, logit(b, e)).getResult();
    };
    // lse = max + log Σ exp(l − max); std::max(a, b) is a < b ? b : a.
    Value mx = loop(b, one, nE, {wide(b, zero)},
                    [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
                      Value l = wide(b, e);
                      Value less = arith::CmpFOp::create(
                          b, arith::CmpFPredicate::OLT, a[0], l);
                      return llvm::SmallVector<Value>{
                          arith::SelectOp::create(b, less, l, a[0])};
                    })[0];
    Value sum = loop(b, zero, nE, {f64(b, 0)},
                     [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
                       Value d = arith::SubFOp::create(b, wide(b, e), mx);
                       return llvm::SmallVector<Value>{arith::AddFOp::create(
                           b, a[0], mlir::math::ExpOp::create(b, d))};
                     })[0];
    Value lse =
        arith::AddFOp::create(b, mx, mlir::math::LogOp::create(b, sum));
    auto prob = [&](ImplicitLocOpBuilder &b, Value e) -> Value {
      return mlir::math::ExpOp::create(
          b, arith::SubFOp::create(b, wide(b, e), lse));
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
    Value selSum = loop(b, zero, nK, {f64(b, 0)},
                        [&](ImplicitLocOpBuilder &b, Value s, ValueRange a) {
                          return llvm::SmallVector<Value>{arith::AddFOp::create(
                              b, a[0], prob(b, selected(b, s)))};
                        })[0];
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
  Value balance =
      loop(b, zero, nE, {f64(b, 0)},
           [&](ImplicitLocOpBuilder &b, Value e, ValueRange a) {
             Value p = arith::DivFOp::create(b, at(b, tokens[2], {e}), T);
             Value c = arith::SIToFPOp::create(b, f64t, at(b, tokens[4], {e}));
             Value f = arith::DivFOp::create(b, c, TK);
             return llvm::SmallVector<Value>{arith::AddFOp::create(
                 b, a[0], arith::MulFOp::create(b, p, f))};
           })[0];
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

mlir::LogicalResult lowerMoe(MoeLayerOp op) {
  EinsumTerm term;
  std::string error;
  if (!termOf(op.getSpec(), op.getSizes(), term, error))
    return op.emitOpError() << error;
  auto xType = mlir::cast<mlir::RankedTensorType>(op.getInput().getType());
  auto yType = mlir::cast<mlir::RankedTensorType>(op.getResult().getType());
  if (!xType.getElementType().isF32())
    return op.emitOpError() << "is lowered for f32 only, got "
                            << xType.getElementType();
  const char rank = rankLetter(term);
  const int64_t E = op.getExperts(), K = op.getTopK();
  const int64_t dIn = op.getDIn(), dOut = op.getDOut();
  ImplicitLocOpBuilder b(op.getLoc(), op);
  auto f32 = b.getF32Type();
  auto idxT = b.getIndexType();
  const int64_t dyn = mlir::ShapedType::kDynamic;
  Value x = op.getInput(), zero = index(b, 0), one = index(b, 1),
        nK = index(b, K);
  Value n = tensor::DimOp::create(b, x, 0);
  const int64_t batch = xType.getDimSize(0);
  // Router: logits[n, E] = x · router, through the layer machinery.
  Value logits = routerLogits(b, b.getLoc(), x, op.getRouter(), dIn, E);
  auto route = RouteOp::create(
      b, mlir::RankedTensorType::get({batch, K}, f32),
      mlir::RankedTensorType::get({batch, K}, b.getI32Type()),
      op.getAuxLoss().getType(), logits, b.getI64IntegerAttr(K));
  // Slots s = token·k + j, flattened.
  llvm::SmallVector<mlir::ReassociationIndices> flat = {{0, 1}};
  Value slotExpert = tensor::CollapseShapeOp::create(b, route.getExperts(), flat);
  Value slotGate = tensor::CollapseShapeOp::create(b, route.getGates(), flat);
  Value slots = arith::MulIOp::create(b, n, nK);
  auto expertOf = [&](ImplicitLocOpBuilder &b, Value s) {
    return toIndex(b, at(b, slotExpert, {s}));
  };
  // Counting sort of the slots by expert (stable: slot order within one).
  auto vec = [&](int64_t size) {
    return mlir::RankedTensorType::get({size}, idxT);
  };
  Value counts = loop(b, zero, slots, {filled(b, vec(E), {}, zero)},
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
                                                          at(b, counts, {e}));
                       return llvm::SmallVector<Value>{put(b, a[1], a[0], {e}),
                                                       next};
                     });
  Value offsets = put(b, starts[1], starts[0], {index(b, E)});
  Value cursor0 = tensor::ExtractSliceOp::create(
      b, vec(E), offsets, llvm::ArrayRef<mlir::OpFoldResult>{b.getIndexAttr(0)},
      llvm::ArrayRef<mlir::OpFoldResult>{b.getIndexAttr(E)},
      llvm::ArrayRef<mlir::OpFoldResult>{b.getIndexAttr(1)});
  Value order0 = tensor::EmptyOp::create(b, vec(dyn), ValueRange{slots});
  Value order = loop(b, zero, slots, {order0, cursor0},
                     [&](ImplicitLocOpBuilder &b, Value s, ValueRange a) {
                       Value e = expertOf(b, s);
                       Value p = at(b, a[1], {e});
                       Value next = arith::AddIOp::create(b, p, one);
                       return llvm::SmallVector<Value>{put(b, s, a[0], {p}),
                                                       put(b, next, a[1], {e})};
                     })[0];
  // Each expert's rank-1 layer on its rows, gated rows added into y in
  // expert order, rows in token order (deterministic).
  llvm::SmallVector<Value> yDynamic;
  if (yType.isDynamicDim(0))
    yDynamic.push_back(n);
  Value y0 = filled(b, yType, yDynamic,
                    arith::ConstantFloatOp::create(b, f32, llvm::APFloat(0.0f)));
  auto expertSizes = withSize(op.getSizes(), rank, 1);
  auto rowsType = mlir::RankedTensorType::get({dyn, dIn}, f32);
  auto outType = mlir::RankedTensorType::get({dyn, dOut}, f32);
  auto perExpert = [&](ImplicitLocOpBuilder &b, Value e, ValueRange a)
      -> llvm::SmallVector<Value> {
    Value start = at(b, offsets, {e});
    Value end = at(b, offsets, {arith::AddIOp::create(b, e, one)});
    Value c = arith::SubIOp::create(b, end, start);
    Value busy = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, c, zero);
    auto ifOp = scf::IfOp::create(b, mlir::TypeRange{yType}, busy, true);
    {
      mlir::OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(b, a[0]);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      auto slotAt = [&](ImplicitLocOpBuilder &b, Value i) {
        return at(b, order, {arith::AddIOp::create(b, start, i)});
      };
      auto row = [&](int64_t width) {
        return llvm::SmallVector<mlir::OpFoldResult>{b.getIndexAttr(1),
                                                     b.getIndexAttr(width)};
      };
      llvm::SmallVector<mlir::OpFoldResult> unit = {b.getIndexAttr(1),
                                                    b.getIndexAttr(1)};
      Value xs0 = tensor::EmptyOp::create(b, rowsType, ValueRange{c});
      Value xs = loop(
          b, zero, c, {xs0},
          [&](ImplicitLocOpBuilder &b, Value i, ValueRange r) {
            Value t = arith::DivUIOp::create(b, slotAt(b, i), nK);
            Value src = tensor::ExtractSliceOp::create(
                b, mlir::RankedTensorType::get({1, dIn}, f32), x,
                llvm::SmallVector<mlir::OpFoldResult>{t, b.getIndexAttr(0)},
                row(dIn), unit);
            return llvm::SmallVector<Value>{tensor::InsertSliceOp::create(
                b, src, r[0],
                llvm::SmallVector<mlir::OpFoldResult>{i, b.getIndexAttr(0)},
                row(dIn), unit)};
          })[0];
      // Expert e's slice of each weight along the rank letter.
      llvm::SmallVector<Value> weights;
      for (auto [k, w] : llvm::enumerate(op.getWeights())) {
        auto type = mlir::cast<mlir::RankedTensorType>(w.getType());
        const size_t pos = term.weights[k].find(rank);
        llvm::SmallVector<mlir::OpFoldResult> offs, sizes, strides;
        llvm::SmallVector<int64_t> shape(type.getShape());
        for (int64_t d = 0; d < type.getRank(); ++d) {
          offs.push_back(size_t(d) == pos ? mlir::OpFoldResult(e)
                                          : b.getIndexAttr(0));
          sizes.push_back(b.getIndexAttr(size_t(d) == pos ? 1 : shape[d]));
          strides.push_back(b.getIndexAttr(1));
        }
        shape[pos] = 1;
        weights.push_back(tensor::ExtractSliceOp::create(
            b, mlir::RankedTensorType::get(shape, f32), w, offs, sizes,
            strides));
      }
      Value ys = LayerOp::create(b, outType, xs, weights, op.getSpecAttr(),
                                 expertSizes, op.getDInAttr(), op.getDOutAttr(),
                                 nullptr, nullptr, nullptr);
      Value yNew = loop(
          b, zero, c, {a[0]},
          [&](ImplicitLocOpBuilder &b, Value i, ValueRange r) {
            Value s = slotAt(b, i);
            Value t = arith::DivUIOp::create(b, s, nK);
            Value gate = at(b, slotGate, {s});
            auto rowT = mlir::RankedTensorType::get({1, dOut}, f32);
            llvm::SmallVector<mlir::OpFoldResult> dstAt = {t, b.getIndexAttr(0)},
                                                  srcAt = {i, b.getIndexAttr(0)};
            Value dst = tensor::ExtractSliceOp::create(b, rowT, r[0], dstAt,
                                                       row(dOut), unit);
            Value src = tensor::ExtractSliceOp::create(b, rowT, ys, srcAt,
                                                       row(dOut), unit);
            auto id = b.getMultiDimIdentityMap(2);
            auto sum = mlir::linalg::GenericOp::create(
                b, rowT, ValueRange{src}, ValueRange{dst},
                llvm::ArrayRef<mlir::AffineMap>{id, id},
                llvm::ArrayRef<mlir::utils::IteratorType>{
                    mlir::utils::IteratorType::parallel,
                    mlir::utils::IteratorType::parallel},
                [&](mlir::OpBuilder &ob, mlir::Location loc, ValueRange v) {
                  Value g = arith::MulFOp::create(ob, loc, gate, v[0]);
                  mlir::linalg::YieldOp::create(
                      ob, loc, ValueRange{arith::AddFOp::create(ob, loc, v[1], g)});
                });
            return llvm::SmallVector<Value>{tensor::InsertSliceOp::create(
                b, sum.getResult(0), r[0], dstAt, row(dOut), unit)};
          })[0];
      scf::YieldOp::create(b, yNew);
    }
    return {ifOp.getResult(0)};
  };
  Value y = loop(b, zero, index(b, E), {y0}, perExpert)[0];
  op.replaceAllUsesWith(ValueRange{y, route.getAuxLoss()});
  op.erase();
  lowerRoute(route);
  return mlir::success();
}

struct LowerMoePass : impl::LowerMoeBase<LowerMoePass> {
  void runOnOperation() override {
    llvm::SmallVector<MoeLayerOp> layers;
    getOperation()->walk([&](MoeLayerOp op) { layers.push_back(op); });
    for (MoeLayerOp op : layers)
      if (mlir::failed(lowerMoe(op))) {
        signalPassFailure();
        return;
      }
    llvm::SmallVector<RouteOp> routes;
    getOperation()->walk([&](RouteOp op) { routes.push_back(op); });
    for (RouteOp op : routes)
      lowerRoute(op);
  }
};

} // namespace
} // namespace einstruct
