// --einstruct-block-transposes: cache-blocked loops for bufferized
// linalg.transpose.
#include "Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_BLOCKTRANSPOSES
#include "Passes.h.inc"

namespace {

using mlir::Value;
// 16 floats: one 64-byte cache line of each side per tile row.
constexpr int64_t kTile = 16;

struct BlockTransposesPass : impl::BlockTransposesBase<BlockTransposesPass> {
  using BlockTransposesBase::BlockTransposesBase;

  void runOnOperation() override {
    llvm::SmallVector<mlir::linalg::TransposeOp> todo;
    getOperation()->walk([&](mlir::linalg::TransposeOp t) {
      if (t.hasPureBufferSemantics())
        todo.push_back(t);
    });
    for (auto t : todo)
      rewrite(t);
  }

  static mlir::Type elementType(mlir::linalg::TransposeOp t) {
    return mlir::cast<mlir::MemRefType>(t.getInit().getType()).getElementType();
  }

  // lanes × lanes f32 tiles through registers: unit-stride innermost dims
  // on both sides.
  bool vectorTiles(mlir::linalg::TransposeOp t) const {
    auto inType = mlir::cast<mlir::MemRefType>(t.getInput().getType());
    auto outType = mlir::cast<mlir::MemRefType>(t.getInit().getType());
    return outType.getElementType().isF32() && inType.isLastDimUnitStride() &&
           outType.isLastDimUnitStride();
  }

  void rewrite(mlir::linalg::TransposeOp t) {
    auto perm = t.getPermutation();
    size_t rank = perm.size();
    // out[i] = in[j] with j[perm[k]] = i[k]. The output's last index and the
    // input's last index (output position `p`) are the two strided ones.
    size_t q = rank - 1, p = rank;
    for (size_t k = 0; k < rank; ++k)
      if (perm[k] == int64_t(rank - 1))
        p = k;
    if (p == q)
      return; // the innermost index stays innermost: a plain copy
    mlir::OpBuilder b(t);
    mlir::Location loc = t.getLoc();
    Value in = t.getInput(), out = t.getInit();
    auto cst = [&](mlir::OpBuilder &ob, int64_t v) -> Value {
      return mlir::arith::ConstantIndexOp::create(ob, loc, v);
    };
    llvm::SmallVector<Value> bound(rank), iv(rank);
    for (size_t k = 0; k < rank; ++k)
      bound[k] = mlir::memref::DimOp::create(b, loc, out, int64_t(k));
    auto loop = [&](mlir::OpBuilder &ob, Value lo, Value hi, Value step,
                    auto &&body) {
      auto f = mlir::scf::ForOp::create(ob, loc, lo, hi, step);
      mlir::OpBuilder nb = mlir::OpBuilder::atBlockBegin(f.getBody());
      nb.setInsertionPoint(f.getBody()->getTerminator());
      body(nb, f.getInductionVar());
    };
    // The input's indices of the output element at iv.
    auto source = [&]() {
      llvm::SmallVector<Value> src(rank);
      for (size_t d = 0; d < rank; ++d)
        src[size_t(perm[d])] = iv[d];
      return src;
    };
    Value zero = cst(b, 0), one = cst(b, 1);
    // [0, pEnd) × [0, qEnd) in lanes × lanes tiles: `lanes` vector loads
    // along the input's last index, one in-register transpose, `lanes`
    // vector stores along the output's.
    auto registerTiles = [&](mlir::OpBuilder &ob, Value pEnd, Value qEnd) {
      Value step = cst(ob, lanes);
      auto vec = mlir::VectorType::get({lanes}, elementType(t));
      auto mat = mlir::VectorType::get({lanes, lanes}, elementType(t));
      loop(ob, zero, pEnd, step, [&](mlir::OpBuilder &pb, Value P) {
        loop(pb, zero, qEnd, step, [&](mlir::OpBuilder &qb, Value Q) {
          Value m = mlir::arith::ConstantOp::create(
              qb, loc, mat,
              mlir::DenseElementsAttr::get(
                  mat, qb.getFloatAttr(elementType(t), 0.0)));
          iv[p] = P;
          for (int64_t i = 0; i < lanes; ++i) {
            iv[q] = mlir::arith::AddIOp::create(qb, loc, Q, cst(qb, i));
            Value row = mlir::vector::LoadOp::create(qb, loc, vec, in, source());
            m = mlir::vector::InsertOp::create(qb, loc, row, m, i);
          }
          Value tr = mlir::vector::TransposeOp::create(
              qb, loc, m, llvm::ArrayRef<int64_t>{1, 0});
          iv[q] = Q;
          for (int64_t j = 0; j < lanes; ++j) {
            iv[p] = mlir::arith::AddIOp::create(qb, loc, P, cst(qb, j));
            Value row = mlir::vector::ExtractOp::create(qb, loc, tr, j);
            mlir::vector::StoreOp::create(qb, loc, row, out, iv);
          }
        });
      });
    };
    // [pLo, pHi) × [qLo, qHi) in kTile × kTile blocks of scalar copies.
    auto blocks = [&](mlir::OpBuilder &ob, Value pLo, Value pHi, Value qLo,
                      Value qHi) {
      Value tile = cst(ob, kTile);
      auto inTile = [&](mlir::OpBuilder &nb, Value start, Value hi) {
        Value end = mlir::arith::AddIOp::create(nb, loc, start, tile);
        return mlir::arith::MinSIOp::create(nb, loc, end, hi).getResult();
      };
      loop(ob, pLo, pHi, tile, [&](mlir::OpBuilder &pb, Value P) {
        loop(pb, qLo, qHi, tile, [&](mlir::OpBuilder &qb, Value Q) {
          Value pEnd = inTile(qb, P, pHi), qEnd = inTile(qb, Q, qHi);
          loop(qb, P, pEnd, one, [&](mlir::OpBuilder &eb, Value i) {
            iv[p] = i;
            loop(eb, Q, qEnd, one, [&](mlir::OpBuilder &fb, Value j) {
              iv[q] = j;
              Value v = mlir::memref::LoadOp::create(fb, loc, in, source());
              mlir::memref::StoreOp::create(fb, loc, v, out, iv);
            });
          });
        });
      });
    };
    // The other indices, then kTile × kTile tiles of (p, q), then the
    // elements of a tile.
    std::function<void(mlir::OpBuilder &, size_t)> outer =
        [&](mlir::OpBuilder &ob, size_t k) {
          if (k == p || k == q)
            return outer(ob, k + 1);
          if (k < rank) {
            loop(ob, zero, bound[k], one, [&](mlir::OpBuilder &nb, Value i) {
              iv[k] = i;
              outer(nb, k + 1);
            });
            return;
          }
          // The whole lanes × lanes tiles through registers, then the
          // strips left along p and q (extents that are not multiples of
          // lanes, such as the batch) by the blocked scalar loops.
          auto outType = mlir::cast<mlir::MemRefType>(out.getType());
          int64_t pSize = outType.getDimSize(int64_t(p));
          int64_t qSize = outType.getDimSize(int64_t(q));
          auto fits = [&](int64_t n) {
            return mlir::ShapedType::isDynamic(n) || n >= lanes;
          };
          if (!vectorTiles(t) || !fits(pSize) || !fits(qSize))
            return blocks(ob, zero, bound[p], zero, bound[q]);
          auto divides = [&](int64_t n) {
            return !mlir::ShapedType::isDynamic(n) && n % lanes == 0;
          };
          auto whole = [&](size_t d) -> Value {
            Value rem =
                mlir::arith::RemSIOp::create(ob, loc, bound[d], cst(ob, lanes));
            return mlir::arith::SubIOp::create(ob, loc, bound[d], rem);
          };
          Value pMain = divides(pSize) ? bound[p] : whole(p);
          Value qMain = divides(qSize) ? bound[q] : whole(q);
          registerTiles(ob, pMain, qMain);
          if (!divides(pSize))
            blocks(ob, pMain, bound[p], zero, bound[q]);
          if (!divides(qSize))
            blocks(ob, zero, pMain, qMain, bound[q]);
        };
    outer(b, 0);
    t.erase();
  }
};

} // namespace
} // namespace einstruct
