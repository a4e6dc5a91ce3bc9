// --einstruct-lower-ssd: the chunked SSD's own ops and their gradients.
// einstruct.chunk_decays becomes linalg.generic ops (prefix sums as masked
// reductions over one chunk, O(q²) per chunk: small beside the SSD's
// contractions, O(q²·(N + P))); einstruct.chunk_scan an scf.for over the
// chunks, one generic per step on tensors.
#include "Passes.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_LOWERSSD
#include "Passes.h.inc"

namespace {

using mlir::Value;
// A generic's body: its inputs' elements and the loop index of a letter.
using Index = llvm::function_ref<Value(char)>;
using Body = llvm::function_ref<Value(mlir::OpBuilder &, mlir::Location,
                                      mlir::ValueRange args, Index index)>;

Value zero(mlir::OpBuilder &b, mlir::Location loc, mlir::Type t) {
  return mlir::arith::ConstantOp::create(b, loc, b.getZeroAttr(t));
}
Value cmp(mlir::OpBuilder &b, mlir::Location loc, mlir::arith::CmpIPredicate p,
          Value x, Value y) {
  return mlir::arith::CmpIOp::create(b, loc, p, x, y);
}
Value select(mlir::OpBuilder &b, mlir::Location loc, Value c, Value x) {
  return mlir::arith::SelectOp::create(b, loc, c, x, zero(b, loc, x.getType()));
}
// exp of a decay's log, at least e^−87 ≈ 1.6e−38: below that float's
// normal range ends, and one such lane sends a whole vector to libm's
// scalar slow path (strong decays over a chunk reach it).
Value exp(mlir::OpBuilder &b, mlir::Location loc, Value x) {
  Value floor = mlir::arith::ConstantOp::create(
      b, loc, b.getFloatAttr(x.getType(), -87.0));
  return mlir::math::ExpOp::create(
      b, loc, mlir::arith::MaximumFOp::create(b, loc, x, floor));
}
Value sub(mlir::OpBuilder &b, mlir::Location loc, Value x, Value y) {
  return mlir::arith::SubFOp::create(b, loc, x, y);
}
Value mul(mlir::OpBuilder &b, mlir::Location loc, Value x, Value y) {
  return mlir::arith::MulFOp::create(b, loc, x, y);
}
Value add(mlir::OpBuilder &b, mlir::Location loc, Value x, Value y) {
  return mlir::arith::AddFOp::create(b, loc, x, y);
}

// Builds linalg.generic ops over loop dimensions named by letters: 'n' is
// the (possibly dynamic) sequence index, the others static.
struct Generics {
  mlir::OpBuilder &b;
  mlir::Location loc;
  Value n;           // the extent of 'n', an index value
  mlir::Type elt;
  std::map<char, int64_t> extent;

  // out[outLetters] = Σ over the loop letters not in outLetters of
  // body(inputs, loop indices); an input is read at `letters` ('#': the
  // chunk's last step, q − 1).
  // With `update` (elementwise only), the result is written over it and
  // the body sees its old element last: an in-place update, as a loop's
  // carried value must be for bufferization.
  Value build(const std::string &loops,
              llvm::ArrayRef<std::pair<Value, std::string>> inputs,
              const std::string &outLetters, Body body, Value update = {}) {
    auto map = [&](const std::string &letters) {
      llvm::SmallVector<mlir::AffineExpr> exprs;
      for (char c : letters)
        exprs.push_back(c == '#'
                            ? b.getAffineConstantExpr(extent.at('q') - 1)
                            : b.getAffineDimExpr(unsigned(loops.find(c))));
      return mlir::AffineMap::get(unsigned(loops.size()), 0, exprs,
                                  b.getContext());
    };
    llvm::SmallVector<mlir::AffineMap> maps;
    llvm::SmallVector<Value> ins;
    for (auto &[v, letters] : inputs) {
      ins.push_back(v);
      maps.push_back(map(letters));
    }
    maps.push_back(map(outLetters));
    llvm::SmallVector<mlir::utils::IteratorType> iters;
    bool reduces = false;
    for (char c : loops) {
      bool kept = outLetters.find(c) != std::string::npos;
      reduces |= !kept;
      iters.push_back(kept ? mlir::utils::IteratorType::parallel
                           : mlir::utils::IteratorType::reduction);
    }
    llvm::SmallVector<int64_t> shape;
    llvm::SmallVector<Value> dyn;
    for (char c : outLetters)
      if (c == 'n') {
        shape.push_back(mlir::ShapedType::kDynamic);
        dyn.push_back(n);
      } else {
        shape.push_back(extent.at(c));
      }
    Value init = update ? update
                        : mlir::tensor::EmptyOp::create(b, loc, shape, elt, dyn)
                              .getResult();
    if (reduces && !update)
      init = mlir::linalg::FillOp::create(b, loc, zero(b, loc, elt), init)
                 .getResult(0);
    auto resultType = mlir::cast<mlir::RankedTensorType>(init.getType());
    auto generic = mlir::linalg::GenericOp::create(
        b, loc, resultType, ins, mlir::ValueRange{init}, maps, iters,
        [&](mlir::OpBuilder &nb, mlir::Location nl, mlir::ValueRange args) {
          // Every loop index up front, in order (unused ones fold away).
          llvm::SmallVector<Value> indices;
          for (size_t d = 0; d < loops.size(); ++d)
            indices.push_back(mlir::linalg::IndexOp::create(nb, nl, d));
          auto index = [&](char c) { return indices[loops.find(c)]; };
          Value v = body(nb, nl, update ? args : args.drop_back(), index);
          if (reduces && !update)
            v = mlir::arith::AddFOp::create(nb, nl, args.back(), v);
          mlir::linalg::YieldOp::create(nb, nl, v);
        });
    return generic.getResult(0);
  }
};

using P = mlir::arith::CmpIPredicate;

struct Decays {
  Value within, toEnd, fromStart, chunk;
};

// The decays of a[n, c, q, h] ('#' below reads step q − 1, the chunk's
// last).
Decays decays(Generics &g, Value a) {
  // cum[n, h, c, l] = Σ_{t ≤ l} a[n, c, t, h]
  Value cum = g.build("nhclt", {{a, "ncth"}}, "nhcl",
                      [](auto &b, auto loc, auto args, auto i) {
                        return select(b, loc, cmp(b, loc, P::ule, i('t'), i('l')),
                                      args[0]);
                      });
  Decays d;
  d.within = g.build(
      "nhcls", {{cum, "nhcl"}, {cum, "nhcs"}}, "nhcls",
      [](auto &b, auto loc, auto args, auto i) {
        // exp(0) where masked: the masked differences, positive, would
        // overflow (the same slow path).
        Value kept = cmp(b, loc, P::uge, i('l'), i('s'));
        return select(
            b, loc, kept,
            exp(b, loc, select(b, loc, kept, sub(b, loc, args[0], args[1]))));
      });
  d.toEnd = g.build("nhcs", {{cum, "nhc#"}, {cum, "nhcs"}}, "nhcs",
                    [](auto &b, auto loc, auto args, auto) {
                      return exp(b, loc, sub(b, loc, args[0], args[1]));
                    });
  d.fromStart = g.build("nhcl", {{cum, "nhcl"}}, "nhcl",
                        [](auto &b, auto loc, auto args, auto) {
                          return exp(b, loc, args[0]);
                        });
  d.chunk = g.build("nhc", {{cum, "nhc#"}}, "nhc",
                    [](auto &b, auto loc, auto args, auto) {
                      return exp(b, loc, args[0]);
                    });
  return d;
}

// da for cotangents (dW, dE, dS, dG) of (within, to_end, from_start,
// chunk), through cum: within = exp(cum_l − cum_s) gives dcum_l += Σ_s
// dW·W and dcum_s −= Σ_l dW·W; to_end = exp(cum_{q−1} − cum_s) likewise;
// from_start = exp(cum_l) and chunk = exp(cum_{q−1}). Then
// da_t = Σ_{l ≥ t} dcum_l.
Value decaysGrad(Generics &g, Value a, Value dW, Value dE, Value dS, Value dG) {
  Decays d = decays(g, a);
  auto dot = [](auto &b, auto loc, auto args, auto) {
    return mul(b, loc, args[0], args[1]);
  };
  Value row = g.build("nhcls", {{dW, "nhcls"}, {d.within, "nhcls"}}, "nhcl", dot);
  Value col = g.build("nhcsl", {{dW, "nhcls"}, {d.within, "nhcls"}}, "nhcs", dot);
  Value endSum = g.build("nhcs", {{dE, "nhcs"}, {d.toEnd, "nhcs"}}, "nhc", dot);
  Value chunkGrad =
      g.build("nhc", {{dG, "nhc"}, {d.chunk, "nhc"}}, "nhc", dot);
  const int64_t last = g.extent.at('q') - 1;
  Value dcum = g.build(
      "nhcl",
      {{row, "nhcl"}, {col, "nhcl"}, {dS, "nhcl"}, {d.fromStart, "nhcl"},
       {dE, "nhcl"}, {d.toEnd, "nhcl"}, {endSum, "nhc"}, {chunkGrad, "nhc"}},
      "nhcl", [&](auto &b, auto loc, auto args, auto i) {
        Value v = sub(b, loc, args[0], args[1]);
        v = add(b, loc, v, mul(b, loc, args[2], args[3]));
        v = sub(b, loc, v, mul(b, loc, args[4], args[5]));
        Value atEnd = cmp(b, loc, P::eq, i('l'),
                          mlir::arith::ConstantIndexOp::create(b, loc, last));
        return add(b, loc, v,
                   select(b, loc, atEnd, add(b, loc, args[6], args[7])));
      });
  return g.build("nhctl", {{dcum, "nhcl"}}, "ncth",
                 [](auto &b, auto loc, auto args, auto i) {
                   return select(b, loc, cmp(b, loc, P::uge, i('l'), i('t')),
                                 args[0]);
                 });
}

Generics generics(mlir::OpBuilder &b, mlir::Location loc, Value a) {
  auto t = mlir::cast<mlir::RankedTensorType>(a.getType());
  Value n = mlir::tensor::DimOp::create(b, loc, a, 0);
  return Generics{b, loc, n, t.getElementType(),
                  {{'h', t.getDimSize(3)},
                   {'c', t.getDimSize(1)},
                   {'q', t.getDimSize(2)},
                   {'l', t.getDimSize(2)},
                   {'s', t.getDimSize(2)},
                   {'t', t.getDimSize(2)}}};
}

// A zero tensor [n, shape...] of `g`'s element type.
Value zeros(Generics &g, llvm::ArrayRef<int64_t> shape) {
  llvm::SmallVector<int64_t> full = {mlir::ShapedType::kDynamic};
  full.append(shape.begin(), shape.end());
  Value empty = mlir::tensor::EmptyOp::create(g.b, g.loc, full, g.elt,
                                              mlir::ValueRange{g.n});
  return mlir::linalg::FillOp::create(g.b, g.loc, zero(g.b, g.loc, g.elt), empty)
      .getResult(0);
}

// The offsets, sizes and strides of the chunk-`z` slice of `v` along `dim`.
struct SliceAt {
  llvm::SmallVector<mlir::OpFoldResult> offsets, sizes, strides;
  SliceAt(mlir::OpBuilder &b, mlir::Location loc, Value v, int64_t dim,
          Value z) {
    auto t = mlir::cast<mlir::RankedTensorType>(v.getType());
    for (int64_t k = 0; k < t.getRank(); ++k) {
      offsets.push_back(k == dim ? mlir::OpFoldResult(z) : b.getIndexAttr(0));
      sizes.push_back(k == dim ? b.getIndexAttr(1)
                      : t.isDynamicDim(k)
                          ? mlir::OpFoldResult(
                                mlir::tensor::DimOp::create(b, loc, v, k)
                                    .getResult())
                          : b.getIndexAttr(t.getDimSize(k)));
      strides.push_back(b.getIndexAttr(1));
    }
  }
};

// The chunk-`z` slice of v along dimension `dim` (rank-reduced away).
Value slice(mlir::OpBuilder &b, mlir::Location loc, Value v, int64_t dim,
            Value z) {
  auto t = mlir::cast<mlir::RankedTensorType>(v.getType());
  llvm::SmallVector<int64_t> shape(t.getShape());
  shape.erase(shape.begin() + dim);
  SliceAt at(b, loc, v, dim, z);
  return mlir::tensor::ExtractSliceOp::create(
      b, loc, mlir::RankedTensorType::get(shape, t.getElementType()), v,
      at.offsets, at.sizes, at.strides);
}

// `part` written into `into` as its chunk-`z` slice along `dim`.
Value insert(mlir::OpBuilder &b, mlir::Location loc, Value part, Value into,
             int64_t dim, Value z) {
  SliceAt at(b, loc, into, dim, z);
  return mlir::tensor::InsertSliceOp::create(b, loc, part, into, at.offsets,
                                             at.sizes, at.strides);
}

Generics scanGenerics(mlir::OpBuilder &b, mlir::Location loc, Value states) {
  auto t = mlir::cast<mlir::RankedTensorType>(states.getType());
  Value n = mlir::tensor::DimOp::create(b, loc, states, 0);
  return Generics{b, loc, n, t.getElementType(),
                  {{'h', t.getDimSize(2)},
                   {'p', t.getDimSize(3)},
                   {'k', t.getDimSize(4)}}};
}

// entering[z] = decay[z−1]·entering[z−1] + states[z−1] for states
// [n, c, h, p, k] and decay [n, h, c], entering[0] = 0: a loop over the
// chunks carrying the last entering state.
Value scan(Generics &g, Value states, Value decay) {
  auto st = mlir::cast<mlir::RankedTensorType>(states.getType());
  const int64_t T = st.getDimSize(1), H = st.getDimSize(2),
                P = st.getDimSize(3), N = st.getDimSize(4);
  Value all = zeros(g, {T, H, P, N});
  if (T == 1)
    return all;
  mlir::OpBuilder &b = g.b;
  mlir::Location loc = g.loc;
  auto c = [&](int64_t v) {
    return mlir::arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  // Created one at a time: the IR's order then does not depend on the
  // compiler's order of evaluating arguments.
  Value one = c(1), end = c(T), last = zeros(g, {H, P, N});
  auto loop = mlir::scf::ForOp::create(
      b, loc, one, end, one, mlir::ValueRange{all, last},
      [&](mlir::OpBuilder &nb, mlir::Location nl, Value z,
          mlir::ValueRange carried) {
        Value before = mlir::arith::SubIOp::create(
            nb, nl, z, mlir::arith::ConstantIndexOp::create(nb, nl, 1));
        Generics inner{nb, nl, g.n, g.elt, g.extent};
        Value next = inner.build(
            "nhpk",
            {{slice(nb, nl, states, 1, before), "nhpk"},
             {slice(nb, nl, decay, 2, before), "nh"}},
            "nhpk",
            [](auto &b, auto loc, auto args, auto) {
              return add(b, loc, mul(b, loc, args[1], args[2]), args[0]);
            },
            carried[1]);
        mlir::scf::YieldOp::create(
            nb, nl, mlir::ValueRange{insert(nb, nl, next, carried[0], 1, z), next});
      });
  return loop.getResult(0);
}

// The scan backwards: with R_z = ∂/∂entering[z] of everything after,
// R_{c−1} = dE[c−1] and R_z = dE[z] + decay[z]·R_{z+1}; then
// dstates[z] = R_{z+1} and ddecay[z] = <R_{z+1}, entering[z]> (both zero
// for the last chunk).
std::pair<Value, Value> scanGrad(Generics &g, Value states, Value decay,
                                 Value dEntering) {
  auto st = mlir::cast<mlir::RankedTensorType>(states.getType());
  const int64_t T = st.getDimSize(1), H = st.getDimSize(2),
                P = st.getDimSize(3), N = st.getDimSize(4);
  Value dStates = zeros(g, {T, H, P, N}), dDecay = zeros(g, {H, T});
  if (T == 1)
    return {dStates, dDecay};
  Value entering = scan(g, states, decay);
  mlir::OpBuilder &b = g.b;
  mlir::Location loc = g.loc;
  auto c = [&](int64_t v) {
    return mlir::arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  Value first = c(0), steps = c(T - 1), one = c(1);
  Value last = slice(b, loc, dEntering, 1, steps);
  auto loop = mlir::scf::ForOp::create(
      b, loc, first, steps, one, mlir::ValueRange{dStates, dDecay, last},
      [&](mlir::OpBuilder &nb, mlir::Location nl, Value i,
          mlir::ValueRange carried) {
        Value z = mlir::arith::SubIOp::create(
            nb, nl, mlir::arith::ConstantIndexOp::create(nb, nl, T - 2), i);
        Generics inner{nb, nl, g.n, g.elt, g.extent};
        Value R = carried[2], gz = slice(nb, nl, decay, 2, z);
        // dstates[z] = R_{z+1}, copied in before R is updated in place.
        Value dStatesNext = insert(nb, nl, R, carried[0], 1, z);
        Value dG = inner.build(
            "nhpk", {{R, "nhpk"}, {slice(nb, nl, entering, 1, z), "nhpk"}},
            "nh", [](auto &b, auto loc, auto args, auto) {
              return mul(b, loc, args[0], args[1]);
            });
        // Last: R's old value is read above.
        Value nextR = inner.build(
            "nhpk", {{slice(nb, nl, dEntering, 1, z), "nhpk"}, {gz, "nh"}},
            "nhpk",
            [](auto &b, auto loc, auto args, auto) {
              return add(b, loc, args[0], mul(b, loc, args[1], args[2]));
            },
            R);
        mlir::scf::YieldOp::create(
            nb, nl,
            mlir::ValueRange{dStatesNext,
                             insert(nb, nl, dG, carried[1], 2, z), nextR});
      });
  return {loop.getResult(0), loop.getResult(1)};
}

// A result with n dynamic where the op's type has it static: cast back.
Value castTo(mlir::OpBuilder &b, mlir::Location loc, Value v, mlir::Type t) {
  return v.getType() == t ? v
                          : mlir::tensor::CastOp::create(b, loc, t, v).getResult();
}

struct LowerSsdPass
    : impl::LowerSsdBase<LowerSsdPass> {
  void runOnOperation() override {
    llvm::SmallVector<mlir::Operation *> ops;
    getOperation()->walk([&](mlir::Operation *op) {
      if (mlir::isa<ChunkDecaysOp, ChunkDecaysGradOp, ChunkScanOp,
                    ChunkScanGradOp>(op))
        ops.push_back(op);
    });
    for (mlir::Operation *op : ops) {
      mlir::OpBuilder b(op);
      mlir::Location loc = op->getLoc();
      if (auto f = mlir::dyn_cast<ChunkDecaysOp>(op)) {
        Generics g = generics(b, loc, f.getA());
        Decays d = decays(g, f.getA());
        Value vs[4] = {d.within, d.toEnd, d.fromStart, d.chunk};
        for (unsigned k = 0; k < 4; ++k)
          f.getResult(k).replaceAllUsesWith(
              castTo(b, loc, vs[k], f.getResult(k).getType()));
      } else if (auto gr = mlir::dyn_cast<ChunkDecaysGradOp>(op)) {
        Generics g = generics(b, loc, gr.getA());
        Value da = decaysGrad(g, gr.getA(), gr.getDwithin(), gr.getDtoEnd(),
                              gr.getDfromStart(), gr.getDchunk());
        gr.getDa().replaceAllUsesWith(castTo(b, loc, da, gr.getDa().getType()));
      } else if (auto sc = mlir::dyn_cast<ChunkScanOp>(op)) {
        Generics g = scanGenerics(b, loc, sc.getStates());
        Value e = scan(g, sc.getStates(), sc.getDecay());
        sc.getEntering().replaceAllUsesWith(
            castTo(b, loc, e, sc.getEntering().getType()));
      } else {
        auto sg = mlir::cast<ChunkScanGradOp>(op);
        Generics g = scanGenerics(b, loc, sg.getStates());
        auto [ds, dd] = scanGrad(g, sg.getStates(), sg.getDecay(),
                                 sg.getDentering());
        sg.getDstates().replaceAllUsesWith(
            castTo(b, loc, ds, sg.getDstates().getType()));
        sg.getDdecay().replaceAllUsesWith(
            castTo(b, loc, dd, sg.getDdecay().getType()));
      }
      op->erase();
    }
  }
};

} // namespace
} // namespace einstruct
