// --einstruct-vectorize-contractions: the CPU micro-kernel of a contraction.
#include "Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"

namespace einstruct {
#define GEN_PASS_DEF_VECTORIZECONTRACTIONS
#include "Passes.h.inc"

namespace {

using mlir::Value;
constexpr int64_t kLanes = 8; // f32 lanes of an AVX2 register

// The body is exactly `yield(out + a * b)`.
bool isMulAdd(mlir::linalg::GenericOp g) {
  mlir::Block &body = g.getRegion().front();
  if (body.getOperations().size() != 3)
    return false;
  auto mul = mlir::dyn_cast<mlir::arith::MulFOp>(&body.front());
  auto add = mlir::dyn_cast<mlir::arith::AddFOp>(mul ? mul->getNextNode()
                                                     : nullptr);
  return mul && add && add.getLhs() == body.getArgument(2) &&
         add.getRhs() == mul.getResult() &&
         mul.getLhs() == body.getArgument(0) &&
         mul.getRhs() == body.getArgument(1);
}

bool unitInnerStride(Value v) {
  auto type = mlir::cast<mlir::MemRefType>(v.getType());
  return type.isLastDimUnitStride();
}

struct VectorizeContractionsPass
    : impl::VectorizeContractionsBase<VectorizeContractionsPass> {
  void runOnOperation() override {
    llvm::SmallVector<mlir::linalg::GenericOp> todo;
    getOperation()->walk([&](mlir::linalg::GenericOp g) {
      if (g.hasPureBufferSemantics() && g.getNumDpsInputs() == 2 &&
          g.getNumDpsInits() == 1 && isMulAdd(g))
        todo.push_back(g);
    });
    for (auto g : todo)
      rewrite(g);
  }

  void rewrite(mlir::linalg::GenericOp g) {
    auto maps = g.getIndexingMapsArray();
    unsigned loops = g.getNumLoops();
    unsigned inner = loops - 1;
    auto iters = g.getIteratorTypesArray();
    if (iters[inner] != mlir::utils::IteratorType::parallel)
      return;
    Value out = g.getDpsInits()[0];
    auto outType = mlir::cast<mlir::MemRefType>(out.getType());
    if (!mlir::isa<mlir::Float32Type>(outType.getElementType()))
      return;
    // Every operand indexes by plain loop dims; the innermost loop must be
    // the last index of the output and of each input that uses it.
    llvm::SmallVector<llvm::SmallVector<unsigned>> idx(3);
    llvm::SmallVector<bool> hasInner(3, false);
    for (unsigned k = 0; k < 3; ++k) {
      for (mlir::AffineExpr e : maps[k].getResults()) {
        auto d = mlir::dyn_cast<mlir::AffineDimExpr>(e);
        if (!d)
          return;
        idx[k].push_back(d.getPosition());
      }
      auto it = llvm::find(idx[k], inner);
      if (it != idx[k].end()) {
        if (it + 1 != idx[k].end())
          return;
        hasInner[k] = true;
        if (!unitInnerStride(g->getOperand(k)))
          return;
      }
    }
    if (!hasInner[2] || (!hasInner[0] && !hasInner[1]))
      return;
    int64_t extent = outType.getShape().back();
    if (mlir::ShapedType::isDynamic(extent) || extent % kLanes)
      return;
    // Vectors per chunk: up to 4 registers of accumulators.
    int64_t unroll = 1;
    for (int64_t u : {4, 2})
      if (extent % (u * kLanes) == 0) {
        unroll = u;
        break;
      }

    mlir::OpBuilder b(g);
    mlir::Location loc = g.getLoc();
    // Loop bounds from the operands' dims.
    llvm::SmallVector<Value> bound(loops);
    for (unsigned k = 0; k < 3; ++k)
      for (size_t i = 0; i < idx[k].size(); ++i)
        if (!bound[idx[k][i]])
          bound[idx[k][i]] =
              mlir::memref::DimOp::create(b, loc, g->getOperand(k), int64_t(i));
    Value zero = mlir::arith::ConstantIndexOp::create(b, loc, 0);
    Value one = mlir::arith::ConstantIndexOp::create(b, loc, 1);
    Value step = mlir::arith::ConstantIndexOp::create(b, loc, unroll * kLanes);
    auto vecType = mlir::VectorType::get({kLanes}, outType.getElementType());
    llvm::SmallVector<unsigned> par, red;
    for (unsigned d = 0; d < inner; ++d)
      (iters[d] == mlir::utils::IteratorType::parallel ? par : red).push_back(d);
    llvm::SmallVector<Value> iv(loops);
    auto indices = [&](unsigned k, Value laneBase) {
      llvm::SmallVector<Value> v;
      for (unsigned d : idx[k])
        v.push_back(d == inner ? laneBase : iv[d]);
      return v;
    };
    // Dynamic (batch) dimensions are tiled: the tile loop goes outermost and
    // the rows of a tile run inside the weight loops, so a weight slice is
    // reused from cache by kBatchTile rows before moving on.
    constexpr int64_t kBatchTile = 32;
    llvm::SmallVector<unsigned> tiled;
    for (unsigned d : par) {
      bool dynamic = false;
      for (unsigned k = 0; k < 3; ++k)
        for (size_t i = 0; i < idx[k].size(); ++i)
          if (idx[k][i] == d &&
              mlir::cast<mlir::MemRefType>(g->getOperand(k).getType())
                  .isDynamicDim(i))
            dynamic = true;
      if (dynamic)
        tiled.push_back(d);
    }
    llvm::DenseMap<unsigned, Value> tileStart;
    Value tileStep = mlir::arith::ConstantIndexOp::create(b, loc, kBatchTile);
    // Tile loops, then the parallel loops (a tiled dim runs within its
    // tile), then the chunk loop.
    std::function<void(mlir::OpBuilder &, size_t)> outer =
        [&](mlir::OpBuilder &ob, size_t level) {
          if (level < tiled.size()) {
            auto f = mlir::scf::ForOp::create(ob, loc, zero, bound[tiled[level]],
                                              tileStep);
            mlir::OpBuilder nb = mlir::OpBuilder::atBlockBegin(f.getBody());
            nb.setInsertionPoint(f.getBody()->getTerminator());
            tileStart[tiled[level]] = f.getInductionVar();
            outer(nb, level + 1);
            return;
          }
          size_t p = level - tiled.size();
          if (p < par.size()) {
            unsigned d = par[p];
            Value lo = zero, hi = bound[d];
            if (tileStart.count(d)) {
              lo = tileStart[d];
              Value end = mlir::arith::AddIOp::create(ob, loc, lo, tileStep);
              hi = mlir::arith::MinSIOp::create(ob, loc, end, bound[d]);
            }
            auto f = mlir::scf::ForOp::create(ob, loc, lo, hi, one);
            mlir::OpBuilder nb = mlir::OpBuilder::atBlockBegin(f.getBody());
            nb.setInsertionPoint(f.getBody()->getTerminator());
            iv[d] = f.getInductionVar();
            outer(nb, level + 1);
            return;
          }
          auto chunk = mlir::scf::ForOp::create(ob, loc, zero, bound[inner], step);
          mlir::OpBuilder cb = mlir::OpBuilder::atBlockBegin(chunk.getBody());
          cb.setInsertionPoint(chunk.getBody()->getTerminator());
          Value base = chunk.getInductionVar();
          llvm::SmallVector<Value> lanes;
          for (int64_t u = 0; u < unroll; ++u)
            lanes.push_back(mlir::arith::AddIOp::create(
                cb, loc, base,
                mlir::arith::ConstantIndexOp::create(cb, loc, u * kLanes)));
          llvm::SmallVector<Value> acc;
          for (int64_t u = 0; u < unroll; ++u)
            acc.push_back(mlir::vector::LoadOp::create(cb, loc, vecType, out,
                                                       indices(2, lanes[u])));
          // Summed loops carry the accumulators in registers.
          std::function<llvm::SmallVector<Value>(mlir::OpBuilder &, size_t,
                                                 llvm::SmallVector<Value>)>
              reduce = [&](mlir::OpBuilder &rb, size_t level,
                           llvm::SmallVector<Value> accs)
              -> llvm::SmallVector<Value> {
            if (level == red.size()) {
              llvm::SmallVector<Value> next;
              for (int64_t u = 0; u < unroll; ++u) {
                Value ops[2];
                for (unsigned k = 0; k < 2; ++k)
                  ops[k] = hasInner[k]
                               ? Value(mlir::vector::LoadOp::create(
                                     rb, loc, vecType, g->getOperand(k),
                                     indices(k, lanes[u])))
                               : Value(mlir::vector::BroadcastOp::create(
                                     rb, loc, vecType,
                                     mlir::memref::LoadOp::create(
                                         rb, loc, g->getOperand(k),
                                         indices(k, lanes[u]))));
                next.push_back(
                    mlir::vector::FMAOp::create(rb, loc, ops[0], ops[1], accs[u]));
              }
              return next;
            }
            auto f = mlir::scf::ForOp::create(
                rb, loc, zero, bound[red[level]], one, accs,
                [&](mlir::OpBuilder &fb, mlir::Location, Value i,
                    mlir::ValueRange carried) {
                  iv[red[level]] = i;
                  auto res = reduce(fb, level + 1,
                                    llvm::SmallVector<Value>(carried));
                  mlir::scf::YieldOp::create(fb, loc, res);
                });
            return llvm::SmallVector<Value>(f.getResults());
          };
          auto result = reduce(cb, 0, acc);
          for (int64_t u = 0; u < unroll; ++u)
            mlir::vector::StoreOp::create(cb, loc, result[u], out,
                                          indices(2, lanes[u]));
        };
    outer(b, 0);
    g.erase();
  }
};

} // namespace
} // namespace einstruct
