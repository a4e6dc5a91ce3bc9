// --einstruct-vectorize-contractions: the CPU micro-kernel of a contraction.
//
// A contraction acc[...] += lhs[...] * rhs[...] whose innermost index is
// contiguous becomes a register tile: `rows` values of one output index
// (the "row" index, e.g. the batch) × `unroll` vectors of the innermost one.
// Each step of the summed indices loads `unroll` vectors of the operand that
// holds the innermost index, broadcasts `rows` scalars of the other, and
// issues rows × unroll FMAs, so the accumulators never leave registers and
// each loaded vector serves `rows` FMAs (the shape of a GEMM micro-kernel).
#include "Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <limits>
#include <optional>

namespace einstruct {
#define GEN_PASS_DEF_VECTORIZECONTRACTIONS
#include "Passes.h.inc"

namespace {

using mlir::Value;
// Dynamic (batch) extents are tiled by about this many values, so that a
// weight slice is reused from cache by a tile of rows before moving on.
constexpr int64_t kBatchTile = 32;
constexpr int64_t kMaxRows = 8;
constexpr int64_t kMaxUnroll = 4;
// A weight panel (the summed extent × one register tile's columns) larger
// than this is read from beyond L2 by every group of register rows: the
// contraction is then cache-blocked (see Shape::blockDim).
constexpr int64_t kPanelBytes = 64 * 1024;
// A blocked panel's bytes (L1-resident), and the batch rows that reuse it.
constexpr int64_t kBlockedPanelBytes = 32 * 1024;
constexpr int64_t kBlockedBatchTile = 96;

// The body is exactly `yield(out + a * b)`.
bool isMulAdd(mlir::linalg::GenericOp g) {
  mlir::Block &body = g.getRegion().front();
  if (body.getNumArguments() != 3 || body.getOperations().size() != 3)
    return false;
  auto mul = mlir::dyn_cast<mlir::arith::MulFOp>(&body.front());
  auto add = mlir::dyn_cast_or_null<mlir::arith::AddFOp>(mul ? mul->getNextNode()
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

// The zero fill of `out` right before `g` (what --einstruct-lower-to-linalg
// emits), with nothing but pure ops in between: the accumulators can then
// start at zero and the fill go.
mlir::linalg::FillOp zeroFillBefore(mlir::linalg::GenericOp g, Value out) {
  for (mlir::Operation *op = g->getPrevNode(); op; op = op->getPrevNode()) {
    if (auto fill = mlir::dyn_cast<mlir::linalg::FillOp>(op)) {
      if (fill.getOutputs()[0] != out)
        return nullptr;
      auto c = fill.getInputs()[0].getDefiningOp<mlir::arith::ConstantOp>();
      auto f = c ? mlir::dyn_cast<mlir::FloatAttr>(c.getValue()) : nullptr;
      return f && f.getValue().isPosZero() ? fill : nullptr;
    }
    // Only side-effect-free ops in between (a write through an alias of
    // `out` would not name `out` itself).
    if (!mlir::isMemoryEffectFree(op))
      return nullptr;
  }
  return nullptr;
}

// The extent of loop `d` from the first operand indexed by it (dynamic:
// ShapedType::kDynamic).
int64_t staticExtent(mlir::linalg::GenericOp g, unsigned d) {
  auto maps = g.getIndexingMapsArray();
  for (unsigned k = 0; k < maps.size(); ++k)
    for (unsigned i = 0; i < maps[k].getNumResults(); ++i)
      if (maps[k].getDimPosition(i) == d)
        return mlir::cast<mlir::MemRefType>(g->getOperand(k).getType())
            .getDimSize(i);
  return mlir::ShapedType::kDynamic;
}

// How one contraction is vectorised.
struct Shape {
  unsigned loops = 0, inner = 0;
  llvm::SmallVector<llvm::SmallVector<unsigned>> idx; // loop dim per operand index
  bool hasInner[3] = {false, false, false};
  llvm::SmallVector<unsigned> par, red; // outer parallel / summed loop dims
  llvm::SmallVector<unsigned> tiled;    // dynamic parallel dims
  std::optional<unsigned> rowDim;       // blocked into `rows` registers
  int64_t lanes = 8, unroll = 1, rows = 1;
  // Cache blocking, for a weight too large to stay in cache (a dense 4096 ×
  // 4096 layer): the summed loop `blockDim` runs in blocks of `block`, and
  // within a block each panel of the vector operand (block × one register
  // tile's columns, ~32 KB) serves every row group of a batch tile of
  // kBlockedBatchTile rows before the next panel; accumulators are loaded
  // and stored per block.
  std::optional<unsigned> blockDim;
  int64_t block = 0;
};

// Register tile: maximise FMAs per loaded value, rows·unroll / (rows +
// unroll), with the accumulators, the loaded vectors and a broadcast in
// `registers` vector registers.
void chooseTile(Shape &s, int64_t vectors, int64_t registers) {
  double best = -1;
  for (int64_t u = 1; u <= std::min(vectors, kMaxUnroll); ++u) {
    if (vectors % u)
      continue;
    for (int64_t r = 1; r <= (s.rowDim ? kMaxRows : 1); ++r) {
      if (u * r + u + 1 > registers && !(u == 1 && r == 1))
        break;
      double score = double(u * r) / double(u + r);
      if (score > best) {
        best = score;
        s.unroll = u;
        s.rows = r;
      }
    }
  }
}

// The loop structure of `g`, or nothing when it is not a contraction this
// pass handles (left to the scalar loop lowering). `innerExtent` plans for
// that many columns of the innermost index instead of all of them (the
// head splitVectorTail would cut).
std::optional<Shape> analyse(mlir::linalg::GenericOp g, int64_t lanes,
                             int64_t registers,
                             std::optional<int64_t> innerExtent = {}) {
  Shape s;
  auto maps = g.getIndexingMapsArray();
  s.loops = g.getNumLoops();
  s.inner = s.loops - 1;
  auto iters = g.getIteratorTypesArray();
  if (iters[s.inner] != mlir::utils::IteratorType::parallel)
    return std::nullopt;
  auto outType = mlir::cast<mlir::MemRefType>(g.getDpsInits()[0].getType());
  if (!mlir::isa<mlir::Float32Type>(outType.getElementType()))
    return std::nullopt;
  // Every operand indexes by plain loop dims; the innermost loop must be
  // the last index of the output and of each input that uses it.
  s.idx.resize(3);
  for (unsigned k = 0; k < 3; ++k) {
    for (mlir::AffineExpr e : maps[k].getResults()) {
      auto d = mlir::dyn_cast<mlir::AffineDimExpr>(e);
      if (!d)
        return std::nullopt;
      s.idx[k].push_back(d.getPosition());
    }
    auto it = llvm::find(s.idx[k], s.inner);
    if (it != s.idx[k].end()) {
      if (it + 1 != s.idx[k].end() || !unitInnerStride(g->getOperand(k)))
        return std::nullopt;
      s.hasInner[k] = true;
    }
  }
  if (!s.hasInner[2] || (!s.hasInner[0] && !s.hasInner[1]))
    return std::nullopt;
  int64_t extent = innerExtent.value_or(outType.getShape().back());
  if (mlir::ShapedType::isDynamic(extent))
    return std::nullopt;
  // The widest vector that divides the extent, 8 lanes at least.
  s.lanes = extent % lanes == 0 ? lanes : 8;
  if (extent % s.lanes)
    return std::nullopt;
  for (unsigned d = 0; d < s.inner; ++d)
    (iters[d] == mlir::utils::IteratorType::parallel ? s.par : s.red)
        .push_back(d);
  auto isDynamic = [&](unsigned d) {
    for (unsigned k = 0; k < 3; ++k)
      for (size_t i = 0; i < s.idx[k].size(); ++i)
        if (s.idx[k][i] == d &&
            mlir::cast<mlir::MemRefType>(g->getOperand(k).getType())
                .isDynamicDim(i))
          return true;
    return false;
  };
  for (unsigned d : s.par)
    if (isDynamic(d))
      s.tiled.push_back(d);
  // Row index: an output index of the broadcast operand that the vector
  // operand lacks (so each loaded vector serves every row); a dynamic one
  // (the batch) first, else the innermost one long enough to fill a
  // register tile, else the longest.
  if (s.hasInner[0] != s.hasInner[1]) {
    const auto &vec = s.idx[s.hasInner[0] ? 0 : 1];
    const auto &bc = s.idx[s.hasInner[0] ? 1 : 0];
    auto rank = [&](unsigned d) -> int64_t {
      if (isDynamic(d))
        return std::numeric_limits<int64_t>::max();
      return std::min(staticExtent(g, d), kMaxRows);
    };
    for (unsigned d : s.par)
      if (llvm::is_contained(bc, d) && !llvm::is_contained(vec, d) &&
          (!s.rowDim || rank(d) >= rank(*s.rowDim)))
        s.rowDim = d;
  }
  chooseTile(s, extent / s.lanes, registers);
  if (s.rows == 1)
    s.rowDim.reset();
  // Cache blocking: only for a vector operand without the row index (a
  // weight shared by the rows) and static summed extents.
  const int vecOp = s.hasInner[0] ? 0 : 1;
  if (s.rowDim && !llvm::is_contained(s.idx[size_t(vecOp)], *s.rowDim) &&
      !s.red.empty()) {
    int64_t summed = 1, widest = 0;
    for (unsigned d : s.red) {
      int64_t e = staticExtent(g, d);
      if (mlir::ShapedType::isDynamic(e))
        return s;
      summed *= e;
      if (e > widest)
        widest = e, s.blockDim = d;
    }
    const int64_t columnBytes = 4 * s.unroll * s.lanes;
    if (summed * columnBytes <= kPanelBytes) {
      s.blockDim.reset();
      return s;
    }
    const int64_t others = summed / widest;
    s.block = std::max<int64_t>(1, kBlockedPanelBytes / (columnBytes * others));
    if (s.block >= widest)
      s.blockDim.reset();
  }
  return s;
}

// A tile of a dynamic dim: a whole number of register rows.
int64_t tileSize(const Shape &s, unsigned d) {
  const int64_t tile = s.blockDim ? kBlockedBatchTile : kBatchTile;
  if (!s.rowDim || d != *s.rowDim)
    return tile;
  return (tile + s.rows - 1) / s.rows * s.rows;
}

// Writes the loops that replace one contraction, in front of it.
class Emitter {
public:
  Emitter(mlir::linalg::GenericOp g, const Shape &s, bool zeroInit)
      : g_(g), s_(s), loc_(g.getLoc()), zeroInit_(zeroInit), iv_(s.loops),
        bound_(s.loops) {
    Value out = g.getDpsInits()[0];
    vecType_ = mlir::VectorType::get(
        {s.lanes},
        mlir::cast<mlir::MemRefType>(out.getType()).getElementType());
  }

  void emit() {
    mlir::OpBuilder b(g_);
    // Loop bounds from the operands' dims.
    for (unsigned k = 0; k < 3; ++k)
      for (size_t i = 0; i < s_.idx[k].size(); ++i)
        if (!bound_[s_.idx[k][i]])
          bound_[s_.idx[k][i]] = mlir::memref::DimOp::create(
              b, loc_, g_->getOperand(k), int64_t(i));
    // Tile loops, then the parallel loops with the row index innermost (a
    // tiled dim runs within its tile), then the register tiles.
    for (unsigned d : s_.par)
      if (!isRow(d))
        order_.push_back(d);
    if (s_.rowDim)
      order_.push_back(*s_.rowDim);
    outer(b, 0);
  }

  // The innermost summed loop of each register tile.
  llvm::ArrayRef<mlir::scf::ForOp> innermostSummedLoops() const {
    return innermost_;
  }

private:
  bool isRow(unsigned d) const { return s_.rowDim && d == *s_.rowDim; }

  Value cst(mlir::OpBuilder &b, int64_t v) {
    return mlir::arith::ConstantIndexOp::create(b, loc_, v);
  }

  template <typename Body>
  void forLoop(mlir::OpBuilder &b, Value lo, Value hi, int64_t step,
               Body &&body) {
    auto f = mlir::scf::ForOp::create(b, loc_, lo, hi, cst(b, step));
    mlir::OpBuilder nb = mlir::OpBuilder::atBlockBegin(f.getBody());
    nb.setInsertionPoint(f.getBody()->getTerminator());
    body(nb, f.getInductionVar());
  }

  // Operand k's indices for register row `row` at innermost index `lane`.
  llvm::SmallVector<Value> indices(unsigned k, Value lane, int64_t row) {
    llvm::SmallVector<Value> v;
    for (unsigned d : s_.idx[k])
      v.push_back(d == s_.inner ? lane
                  : isRow(d)    ? rowIv_[size_t(row)]
                                : iv_[d]);
    return v;
  }

  void outer(mlir::OpBuilder &b, size_t level) {
    if (level < s_.tiled.size()) {
      unsigned d = s_.tiled[level];
      forLoop(b, cst(b, 0), bound_[d], tileSize(s_, d),
              [&](mlir::OpBuilder &nb, Value i) {
                tileStart_[d] = i;
                outer(nb, level + 1);
              });
      return;
    }
    size_t p = level - s_.tiled.size();
    if (p == order_.size())
      return tile(b, Value(), 1);
    unsigned d = order_[p];
    Value lo = cst(b, 0), hi = bound_[d];
    if (tileStart_.count(d)) {
      lo = tileStart_[d];
      Value end =
          mlir::arith::AddIOp::create(b, loc_, lo, cst(b, tileSize(s_, d)));
      hi = mlir::arith::MinSIOp::create(b, loc_, end, bound_[d]);
    }
    if (!isRow(d)) {
      forLoop(b, lo, hi, 1, [&](mlir::OpBuilder &nb, Value i) {
        iv_[d] = i;
        outer(nb, level + 1);
      });
      return;
    }
    if (s_.blockDim) {
      // Cache-blocked: summed block, then a panel of columns, then every
      // row group of the tile on that panel. (Copying the panel into a
      // contiguous buffer first measured 20 % slower on a dense 4096 layer.)
      forLoop(b, cst(b, 0), bound_[*s_.blockDim], s_.block,
              [&](mlir::OpBuilder &kb, Value k0) {
                blockStart_ = k0;
                forLoop(kb, cst(kb, 0), bound_[s_.inner], s_.unroll * s_.lanes,
                        [&](mlir::OpBuilder &cb, Value base) {
                          rowGroups(cb, lo, hi, [&](mlir::OpBuilder &rb,
                                                    Value row, int64_t rows) {
                            setRows(rb, row, rows);
                            chunk(rb, base, rows);
                          });
                        });
              });
      return;
    }
    rowGroups(b, lo, hi, [&](mlir::OpBuilder &nb, Value i, int64_t rows) {
      tile(nb, i, rows);
    });
  }

  // Whole register tiles of `rows` rows in [lo, hi), then the remainder row
  // by row: body(builder, first row, rows).
  template <typename Body>
  void rowGroups(mlir::OpBuilder &b, Value lo, Value hi, Body &&body) {
    Value len = mlir::arith::SubIOp::create(b, loc_, hi, lo);
    Value rem = mlir::arith::RemSIOp::create(b, loc_, len, cst(b, s_.rows));
    Value mainEnd = mlir::arith::SubIOp::create(b, loc_, hi, rem);
    forLoop(b, lo, mainEnd, s_.rows,
            [&](mlir::OpBuilder &nb, Value i) { body(nb, i, s_.rows); });
    forLoop(b, mainEnd, hi, 1,
            [&](mlir::OpBuilder &nb, Value i) { body(nb, i, 1); });
  }

  void setRows(mlir::OpBuilder &b, Value rowBase, int64_t rows) {
    rowIv_.clear();
    for (int64_t r = 0; r < rows; ++r)
      rowIv_.push_back(
          r ? Value(mlir::arith::AddIOp::create(b, loc_, rowBase, cst(b, r)))
            : rowBase);
  }

  // The register tiles at the current outer indices: `rows` rows from
  // `rowBase`, chunks of unroll × lanes of the innermost index.
  void tile(mlir::OpBuilder &b, Value rowBase, int64_t rows) {
    setRows(b, rowBase, rows);
    forLoop(b, cst(b, 0), bound_[s_.inner], s_.unroll * s_.lanes,
            [&](mlir::OpBuilder &cb, Value base) { chunk(cb, base, rows); });
  }

  // One register tile: load (or zero) the accumulators, run the summed
  // loops with them carried in registers, store.
  void chunk(mlir::OpBuilder &b, Value base, int64_t rows) {
    Value out = g_.getDpsInits()[0];
    lanes_.clear();
    for (int64_t u = 0; u < s_.unroll; ++u)
      lanes_.push_back(u ? Value(mlir::arith::AddIOp::create(
                               b, loc_, base, cst(b, u * s_.lanes)))
                         : base);
    Value zeroVec;
    if (zeroInit_)
      zeroVec = mlir::arith::ConstantOp::create(
          b, loc_, vecType_,
          mlir::DenseElementsAttr::get(
              vecType_, b.getFloatAttr(vecType_.getElementType(), 0.0)));
    // Accumulator (r, u) at r * unroll + u.
    llvm::SmallVector<Value> acc;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t u = 0; u < s_.unroll; ++u)
        acc.push_back(zeroInit_ ? zeroVec
                                : Value(mlir::vector::LoadOp::create(
                                      b, loc_, vecType_, out,
                                      indices(2, lanes_[size_t(u)], r))));
    auto result = reduce(b, 0, acc, rows);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t u = 0; u < s_.unroll; ++u)
        mlir::vector::StoreOp::create(b, loc_, result[size_t(r * s_.unroll + u)],
                                      out, indices(2, lanes_[size_t(u)], r));
  }

  // Operand k at unroll u, row r: a vector where it has the innermost
  // index, else a broadcast scalar.
  Value operand(mlir::OpBuilder &b, unsigned k, int64_t u, int64_t r) {
    auto indexes = indices(k, lanes_[size_t(u)], r);
    if (s_.hasInner[k])
      return mlir::vector::LoadOp::create(b, loc_, vecType_, g_->getOperand(k),
                                          indexes);
    return mlir::vector::BroadcastOp::create(
        b, loc_, vecType_,
        mlir::memref::LoadOp::create(b, loc_, g_->getOperand(k), indexes));
  }

  llvm::SmallVector<Value> reduce(mlir::OpBuilder &b, size_t level,
                                  llvm::SmallVector<Value> acc, int64_t rows) {
    if (level == s_.red.size())
      return step(b, acc, rows);
    unsigned d = s_.red[level];
    Value lo = cst(b, 0), hi = bound_[d];
    if (s_.blockDim && d == *s_.blockDim) {
      lo = blockStart_;
      Value end = mlir::arith::AddIOp::create(b, loc_, lo, cst(b, s_.block));
      hi = mlir::arith::MinSIOp::create(b, loc_, end, bound_[d]);
    }
    auto f = mlir::scf::ForOp::create(
        b, loc_, lo, hi, cst(b, 1), acc,
        [&](mlir::OpBuilder &fb, mlir::Location, Value i,
            mlir::ValueRange carried) {
          iv_[d] = i;
          auto res =
              reduce(fb, level + 1, llvm::SmallVector<Value>(carried), rows);
          mlir::scf::YieldOp::create(fb, loc_, res);
        });
    if (level + 1 == s_.red.size())
      innermost_.push_back(f);
    return llvm::SmallVector<Value>(f.getResults());
  }

  // One summed step: rows × unroll FMAs. A vector operand without the row
  // index is loaded once and shared by the rows.
  llvm::SmallVector<Value> step(mlir::OpBuilder &b,
                                const llvm::SmallVector<Value> &acc,
                                int64_t rows) {
    llvm::SmallVector<Value> shared[2];
    for (unsigned k = 0; k < 2; ++k)
      if (s_.hasInner[k] && s_.rowDim)
        for (int64_t u = 0; u < s_.unroll; ++u)
          shared[k].push_back(operand(b, k, u, 0));
    llvm::SmallVector<Value> next;
    for (int64_t r = 0; r < rows; ++r) {
      Value scalar[2];
      for (unsigned k = 0; k < 2; ++k)
        if (!s_.hasInner[k])
          scalar[k] = operand(b, k, 0, r);
      for (int64_t u = 0; u < s_.unroll; ++u) {
        Value ops[2];
        for (unsigned k = 0; k < 2; ++k)
          ops[k] = scalar[k]            ? scalar[k]
                   : !shared[k].empty() ? shared[k][size_t(u)]
                                        : operand(b, k, u, r);
        next.push_back(mlir::vector::FMAOp::create(
            b, loc_, ops[0], ops[1], acc[size_t(r * s_.unroll + u)]));
      }
    }
    return next;
  }

  mlir::linalg::GenericOp g_;
  const Shape &s_;
  mlir::Location loc_;
  bool zeroInit_;
  mlir::VectorType vecType_;
  llvm::SmallVector<Value> iv_, bound_, rowIv_, lanes_;
  Value blockStart_;
  llvm::SmallVector<unsigned> order_;
  llvm::DenseMap<unsigned, Value> tileStart_;
  llvm::SmallVector<mlir::scf::ForOp> innermost_;
};

// A contraction whose innermost output extent is not a multiple of 8 (a
// BTT's e = 211 in Hydra's in_proj, 3376 = 16 · 211) cannot be vectorised
// whole: it can be split along that index into the whole vectors' columns
// and the last extent % 8, each a contraction on subviews of the operands
// indexed by it (the first one vectorisable, the tail left to the scalar
// loops). At 768 → 3376 that BTT ran 3.7× slower than with e = 208 before
// the split. The whole vectors' columns, or nothing when `g` is not such a
// contraction.
std::optional<int64_t> wholeVectorColumns(mlir::linalg::GenericOp g) {
  auto maps = g.getIndexingMapsArray();
  const unsigned inner = g.getNumLoops() - 1;
  if (g.getIteratorTypesArray()[inner] != mlir::utils::IteratorType::parallel)
    return std::nullopt;
  for (auto &m : maps)
    if (!m.isProjectedPermutation(/*allowZeroInResults=*/false))
      return std::nullopt;
  auto outType = mlir::cast<mlir::MemRefType>(g.getDpsInits()[0].getType());
  const int64_t extent = outType.getShape().back();
  if (mlir::ShapedType::isDynamic(extent) || extent < 8 || extent % 8 == 0 ||
      maps[2].getNumResults() == 0 ||
      maps[2].getDimPosition(maps[2].getNumResults() - 1) != inner)
    return std::nullopt;
  return extent / 8 * 8;
}

// `g` split at column `whole` of its innermost index (see above): returns
// the head; the tail follows it.
mlir::linalg::GenericOp splitVectorTail(mlir::linalg::GenericOp g,
                                        int64_t whole) {
  auto maps = g.getIndexingMapsArray();
  const unsigned inner = g.getNumLoops() - 1;
  const int64_t extent =
      mlir::cast<mlir::MemRefType>(g.getDpsInits()[0].getType())
          .getShape()
          .back();
  mlir::OpBuilder b(g);
  const auto loc = g.getLoc();
  // Operand k's columns [from, from + size) along the inner index.
  auto part = [&](unsigned k, int64_t from, int64_t size) -> Value {
    Value v = g->getOperand(k);
    auto type = mlir::cast<mlir::MemRefType>(v.getType());
    llvm::SmallVector<mlir::OpFoldResult> offsets, sizes, strides;
    for (unsigned i = 0; i < maps[k].getNumResults(); ++i) {
      const bool cut = maps[k].getDimPosition(i) == inner;
      offsets.push_back(b.getIndexAttr(cut ? from : 0));
      if (cut)
        sizes.push_back(b.getIndexAttr(size));
      else if (type.isDynamicDim(i))
        sizes.push_back(
            mlir::memref::DimOp::create(b, loc, v, int64_t(i)).getResult());
      else
        sizes.push_back(b.getIndexAttr(type.getDimSize(i)));
      strides.push_back(b.getIndexAttr(1));
    }
    return mlir::memref::SubViewOp::create(b, loc, v, offsets, sizes, strides);
  };
  auto cloneOn = [&](int64_t from, int64_t size) {
    llvm::SmallVector<Value, 3> operands(g->getOperands());
    for (unsigned k = 0; k < 3; ++k)
      if (llvm::is_contained(maps[k].getResults(), b.getAffineDimExpr(inner)))
        operands[k] = part(k, from, size);
    auto c = mlir::cast<mlir::linalg::GenericOp>(b.clone(*g));
    c->setOperands(operands);
    return c;
  };
  auto head = cloneOn(0, whole);
  cloneOn(whole, extent - whole);
  g.erase();
  return head;
}

struct VectorizeContractionsPass
    : impl::VectorizeContractionsBase<VectorizeContractionsPass> {
  using VectorizeContractionsBase::VectorizeContractionsBase;

  void runOnOperation() override {
    llvm::SmallVector<mlir::linalg::GenericOp> todo;
    getOperation()->walk([&](mlir::linalg::GenericOp g) {
      if (g.hasPureBufferSemantics() && g.getNumDpsInputs() == 2 &&
          g.getNumDpsInits() == 1 && isMulAdd(g))
        todo.push_back(g);
    });
    for (auto g : todo) {
      auto s = analyse(g, lanes, registers);
      // Split off the last extent % 8 columns only where the rest then
      // vectorises.
      if (!s)
        if (auto whole = wholeVectorColumns(g))
          if (analyse(g, lanes, registers, *whole)) {
            g = splitVectorTail(g, *whole);
            s = analyse(g, lanes, registers);
          }
      if (!s)
        continue;
      // A blocked contraction accumulates block by block into the zero
      // fill; otherwise the accumulators start at zero and the fill goes.
      auto fill = zeroFillBefore(g, g.getDpsInits()[0]);
      const bool zeroInit = fill && !s->blockDim;
      Emitter emitter(g, *s, zeroInit);
      emitter.emit();
      // The innermost summed loops run `steps` steps per iteration (with a
      // remainder loop): consecutive FMAs overlap and the loop control is
      // paid once per `steps`, which LLVM's unroller (off in the JIT) did.
      if (steps > 1)
        for (auto loop : emitter.innermostSummedLoops())
          (void)mlir::loopUnrollByFactor(loop, uint64_t(steps));
      g.erase();
      if (zeroInit)
        fill.erase();
    }
  }
};

} // namespace
} // namespace einstruct
