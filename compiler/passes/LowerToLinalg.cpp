// --einstruct-lower-to-linalg: each pairwise contraction becomes one
// linalg.generic over a zero-filled accumulator (a plain product when
// nothing is summed), and each einstruct.reverse
// a copying linalg.generic that reads its input at n − 1 − i, each
// einstruct.unary an elementwise one.
#include "ContractionChain.h"
#include "Passes.h"
#include "UnaryFunctions.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

#include <algorithm>

namespace einstruct {
#define GEN_PASS_DEF_LOWERTOLINALG
#include "Passes.h.inc"

namespace {

// An uninitialised tensor shaped like `v` (its dynamic extents read from
// it): an elementwise generic's init.
mlir::Value emptyLike(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  llvm::SmallVector<mlir::Value> dynamic;
  for (int64_t k = 0; k < type.getRank(); ++k)
    if (type.isDynamicDim(k))
      dynamic.push_back(mlir::tensor::DimOp::create(b, loc, v, k));
  return mlir::tensor::EmptyOp::create(b, loc, type.getShape(),
                                       type.getElementType(), dynamic);
}

struct LowerToLinalgPass : impl::LowerToLinalgBase<LowerToLinalgPass> {
  void runOnOperation() override {
    llvm::SmallVector<ContractOp> contracts;
    llvm::SmallVector<ReverseOp> reversals;
    llvm::SmallVector<UnaryOp> unaries;
    bool layersLeft = false;
    getOperation()->walk([&](mlir::Operation *op) {
      if (auto c = mlir::dyn_cast<ContractOp>(op))
        contracts.push_back(c);
      else if (auto r = mlir::dyn_cast<ReverseOp>(op))
        reversals.push_back(r);
      else if (auto u = mlir::dyn_cast<UnaryOp>(op))
        unaries.push_back(u);
      else if (auto l = mlir::dyn_cast<LayerOp>(op)) {
        l.emitOpError() << "run --einstruct-plan-contractions before lowering";
        layersLeft = true;
      }
    });
    if (layersLeft)
      return signalPassFailure();
    for (ContractOp op : contracts)
      lower(op);
    for (ReverseOp op : reversals)
      lower(op);
    for (UnaryOp op : unaries)
      lower(op);
  }

  // result = f(scale·x + shift), elementwise.
  void lower(UnaryOp op) {
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    auto type = mlir::cast<mlir::RankedTensorType>(op.getType());
    const int64_t rank = type.getRank();
    mlir::Value init = emptyLike(b, loc, op.getInput());
    auto identity = b.getMultiDimIdentityMap(unsigned(rank));
    const double scale = op.getScale().convertToDouble(),
                 shift = op.getShift().convertToDouble();
    const std::string kind = op.getKind().str();
    auto map = mlir::linalg::GenericOp::create(
        b, loc, type, mlir::ValueRange{op.getInput()}, mlir::ValueRange{init},
        llvm::ArrayRef<mlir::AffineMap>{identity, identity},
        llvm::SmallVector<mlir::utils::IteratorType>(
            size_t(rank), mlir::utils::IteratorType::parallel),
        [&](mlir::OpBuilder &nb, mlir::Location l, mlir::ValueRange args) {
          mlir::Value z = args[0];
          auto constant = [&](double v) {
            return mlir::arith::ConstantOp::create(
                nb, l, nb.getFloatAttr(z.getType(), v));
          };
          if (scale != 1)
            z = mlir::arith::MulFOp::create(nb, l, z, constant(scale));
          if (shift != 0)
            z = mlir::arith::AddFOp::create(nb, l, z, constant(shift));
          mlir::linalg::YieldOp::create(nb, l, unaryScalar(nb, l, kind, z));
        });
    op.replaceAllUsesWith(map.getResult(0));
    op.erase();
  }

  void lower(ReverseOp op) {
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    auto type = mlir::cast<mlir::RankedTensorType>(op.getType());
    const int64_t rank = type.getRank(), dim = op.getDim();
    mlir::Value init = emptyLike(b, loc, op.getInput());
    llvm::SmallVector<mlir::AffineExpr> read;
    for (int64_t k = 0; k < rank; ++k)
      read.push_back(k == dim
                         ? b.getAffineConstantExpr(type.getDimSize(k) - 1) -
                               b.getAffineDimExpr(unsigned(k))
                         : b.getAffineDimExpr(unsigned(k)));
    auto identity = b.getMultiDimIdentityMap(unsigned(rank));
    auto copy = mlir::linalg::GenericOp::create(
        b, loc, type, mlir::ValueRange{op.getInput()}, mlir::ValueRange{init},
        llvm::ArrayRef<mlir::AffineMap>{
            mlir::AffineMap::get(unsigned(rank), 0, read, b.getContext()),
            identity},
        llvm::SmallVector<mlir::utils::IteratorType>(
            size_t(rank), mlir::utils::IteratorType::parallel),
        [](mlir::OpBuilder &nb, mlir::Location l, mlir::ValueRange args) {
          mlir::linalg::YieldOp::create(nb, l, args[0]);
        });
    op.replaceAllUsesWith(copy.getResult(0));
    op.erase();
  }

  // Moves `letter` to the last dimension of `v` with a linalg.transpose;
  // returns v and its letters unchanged when the letter is already last or
  // absent.
  std::pair<mlir::Value, std::string>
  lastDimension(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                std::string letters, char letter) {
    size_t at = letters.find(letter);
    if (at == std::string::npos || at + 1 == letters.size())
      return {v, letters};
    std::string moved = letters;
    moved.erase(at, 1);
    moved += letter;
    return {permuted(b, loc, v, letters, moved), moved};
  }

  // The operand without the innermost index (`v`) is read one scalar per
  // summed step. When its last index is an outer index of the other operand
  // too (Monarch's z after its first stage, whose block index the weight
  // also has), those scalars are a cache line apart; moving its summed
  // indices last makes them consecutive (one transpose, as a hand-written
  // version transposes z between its GEMMs). A last index the other operand
  // lacks is left: it is the register tile's row index, and a tile's rows
  // then share a line.
  std::pair<mlir::Value, std::string>
  summedLast(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
             std::string letters, const std::string &other,
             const std::string &out) {
    if (letters.empty() || out.find(letters.back()) == std::string::npos ||
        other.find(letters.back()) == std::string::npos)
      return {v, letters};
    std::string kept, summed;
    for (char c : letters)
      (out.find(c) == std::string::npos ? summed : kept) += c;
    if (summed.empty())
      return {v, letters};
    // The longest summed index last: the transpose then moves whole
    // vector-sized tiles (BTT's z: rank 2 before the block index 64).
    auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
    auto extent = [&](char c) {
      return type.getDimSize(int64_t(letters.find(c)));
    };
    std::stable_sort(summed.begin(), summed.end(), [&](char x, char y) {
      return extent(x) < extent(y);
    });
    return {permuted(b, loc, v, letters, kept + summed), kept + summed};
  }

  // The result's letters to compute in: its own, unless its last index is
  // in both operands (DYAD's transposed term, ik,koi->ok: the block index
  // k innermost everywhere, so no operand is a broadcast and each
  // multiply-add needs two loads). Then an index only the weight has moves
  // last, the contraction is an ordinary broadcast one, and one transpose
  // puts the result back.
  static std::string computeOrder(const EinsumTerm &t, bool lhsStatic,
                                  bool rhsStatic, bool weightGradient) {
    const std::string &out = t.output;
    const std::string &lhs = t.input, &rhs = t.weights[0];
    auto in = [](const std::string &s, char c) {
      return s.find(c) != std::string::npos;
    };
    const char inner = out.back();
    if (weightGradient || !in(lhs, inner) || !in(rhs, inner) ||
        lhsStatic == rhsStatic)
      return out;
    const std::string &weight = lhsStatic ? lhs : rhs, &batched = lhsStatic ? rhs : lhs;
    for (size_t k = out.size() - 1; k-- > 0;)
      if (in(weight, out[k]) && !in(batched, out[k])) {
        std::string order = out;
        order.erase(k, 1);
        return order + out[k];
      }
    return out;
  }

  void lower(ContractOp op) {
    auto t = parseEinsumLetters(op.getSpec().str());
    mlir::OpBuilder b(op);
    mlir::Location loc = op.getLoc();
    auto isStatic = [](mlir::Value v) {
      return mlir::cast<mlir::RankedTensorType>(v.getType()).hasStaticShape();
    };
    mlir::Value lhs = op.getLhs(), rhs = op.getRhs();
    std::string lhsLetters = t->input, rhsLetters = t->weights[0];
    // A weight gradient: a static result summed over the batch. Its
    // operands are all reordered below.
    bool weightGradient = isStatic(op.getResult());
    const std::string out =
        computeOrder(*t, isStatic(lhs), isStatic(rhs), weightGradient);
    // Loop order: the result's outer indices, the summed indices, then the
    // result's last index innermost. That innermost loop is contiguous in
    // the result and (after moving it last in each operand) in the
    // operands, so it runs as a vectorised multiply-add over a broadcast.
    char inner = out.back();
    // A batched operand gets the innermost index last (weights are
    // reordered below).
    if (!isStatic(lhs) && !weightGradient)
      std::tie(lhs, lhsLetters) = lastDimension(b, loc, lhs, lhsLetters, inner);
    if (!isStatic(rhs) && !weightGradient)
      std::tie(rhs, rhsLetters) = lastDimension(b, loc, rhs, rhsLetters, inner);
    bool lhsHas = lhsLetters.find(inner) != std::string::npos;
    bool rhsHas = rhsLetters.find(inner) != std::string::npos;
    if (lhsHas && !rhsHas && !weightGradient)
      std::tie(rhs, rhsLetters) =
          summedLast(b, loc, rhs, rhsLetters, lhsLetters, out);
    else if (rhsHas && !lhsHas && !weightGradient)
      std::tie(lhs, lhsLetters) =
          summedLast(b, loc, lhs, lhsLetters, rhsLetters, out);
    // Outer loops: indices of a static operand (a weight) first, so that
    // its slice stays in cache while the batch runs inside.
    std::string dims;
    std::string stat;
    for (auto [v, letters] : {std::pair{lhs, lhsLetters},
                              std::pair{rhs, rhsLetters}})
      if (isStatic(v))
        stat += letters;
    for (bool weightFirst : {true, false})
      for (char c : out.substr(0, out.size() - 1))
        if ((stat.find(c) != std::string::npos) == weightFirst)
          dims += c;
    for (char c : lhsLetters + rhsLetters)
      if (out.find(c) == std::string::npos && dims.find(c) == std::string::npos)
        dims += c;
    dims += inner;
    // A weight is laid out in loop order (one transpose per call, as a
    // BLAS packs its operands): the slice that one outer iteration reads is
    // then contiguous instead of rows a large power of two apart, which
    // share a few cache sets and evict each other. So are both operands of
    // a weight gradient (a static result summed over the batch), whose
    // batch loop runs inside: --einstruct-fuse-batch-tiles then transposes
    // them one batch tile at a time, in cache (BTT's dW2 alone: 2.75 ms
    // with batch-major operands, 1.83 ms in loop order).
    for (auto *operand : {&lhs, &rhs}) {
      std::string &letters = operand == &lhs ? lhsLetters : rhsLetters;
      if (!isStatic(*operand) && !weightGradient)
        continue;
      std::string ordered = letters;
      std::stable_sort(ordered.begin(), ordered.end(), [&](char x, char y) {
        return dims.find(x) < dims.find(y);
      });
      if (ordered != letters) {
        *operand = permuted(b, loc, *operand, letters, ordered);
        letters = ordered;
      }
    }
    auto map = [&](const std::string &letters) {
      llvm::SmallVector<mlir::AffineExpr> exprs;
      for (char c : letters)
        exprs.push_back(b.getAffineDimExpr(unsigned(dims.find(c))));
      return mlir::AffineMap::get(unsigned(dims.size()), 0, exprs,
                                  b.getContext());
    };
    llvm::SmallVector<mlir::utils::IteratorType> iters;
    for (char c : dims)
      iters.push_back(out.find(c) != std::string::npos
                          ? mlir::utils::IteratorType::parallel
                          : mlir::utils::IteratorType::reduction);
    auto opType = mlir::cast<mlir::RankedTensorType>(op.getType());
    llvm::SmallVector<int64_t> shape;
    for (char c : out)
      shape.push_back(opType.getDimSize(int64_t(t->output.find(c))));
    auto resType = mlir::RankedTensorType::get(shape, opType.getElementType());
    // Dynamic result extents come from an operand holding the same index.
    llvm::SmallVector<mlir::Value> dynSizes;
    for (size_t k = 0; k < out.size(); ++k) {
      if (!resType.isDynamicDim(k))
        continue;
      size_t at = t->input.find(out[k]);
      mlir::Value src = op.getLhs();
      if (at == std::string::npos) {
        at = t->weights[0].find(out[k]);
        src = op.getRhs();
      }
      dynSizes.push_back(
          mlir::tensor::DimOp::create(b, loc, src, int64_t(at)).getResult());
    }
    mlir::Type elt = resType.getElementType();
    mlir::Value empty =
        mlir::tensor::EmptyOp::create(b, loc, resType.getShape(), elt, dynSizes);
    // Nothing summed: an elementwise product, which never reads its init,
    // so that --einstruct-fuse-elementwise can merge it with its neighbours
    // (a short convolution's taps and their sum become one pass).
    const bool summed = dims.size() > out.size();
    mlir::Value init = empty;
    if (summed) {
      mlir::Value zero =
          mlir::arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
      init = mlir::linalg::FillOp::create(b, loc, zero, empty).getResult(0);
    }
    auto generic = mlir::linalg::GenericOp::create(
        b, loc, resType, mlir::ValueRange{lhs, rhs}, mlir::ValueRange{init},
        llvm::ArrayRef<mlir::AffineMap>{map(lhsLetters), map(rhsLetters),
                                        map(out)},
        iters,
        [&](mlir::OpBuilder &nb, mlir::Location nl, mlir::ValueRange args) {
          // contract: let LLVM fuse the multiply-add into an FMA.
          auto fm = mlir::arith::FastMathFlags::contract;
          mlir::Value prod =
              mlir::arith::MulFOp::create(nb, nl, args[0], args[1], fm);
          if (summed)
            prod = mlir::arith::AddFOp::create(nb, nl, args[2], prod, fm);
          mlir::linalg::YieldOp::create(nb, nl, prod);
        });
    mlir::Value result = generic.getResult(0);
    if (out != t->output)
      result = permuted(b, loc, result, out, t->output);
    op.replaceAllUsesWith(result);
    op.erase();
  }
};

} // namespace
} // namespace einstruct
