// The residuals a backward keeps, as a minimum cut: each forward value is a
// pair of nodes in -> out joined by an edge as wide as its bytes; the
// source feeds the values that cannot be recomputed, the backward's reads
// drain into the sink, and data flows value to value along unbounded
// edges. A cut then separates what the forward computes from what the
// backward has, crossing exactly the saved values' edges (the min-cut
// rematerialisation of PyTorch's AOTAutograd partitioner). Then the saved
// backward's extents, read off the operands rather than recomputed values.
#include "Residuals.h"
#include "ExtentSource.h"

#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include "llvm/ADT/DenseMap.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/push_relabel_max_flow.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

namespace einstruct {
namespace {

using mlir::Value;

// Whether `v` comes from the function's arguments by extents and their
// arithmetic, constants, fills, reshapes and slices alone (as cheap to
// recompute as to save).
bool recomputable(Value v, llvm::DenseMap<Value, bool> &memo) {
  if (mlir::isa<mlir::BlockArgument>(v))
    return true;
  if (auto it = memo.find(v); it != memo.end())
    return it->second;
  mlir::Operation *d = v.getDefiningOp();
  if (mlir::isa<mlir::tensor::DimOp>(d)) // an extent: the shapes'
    return true;
  const bool scalars = llvm::none_of(d->getResultTypes(), [](mlir::Type t) {
    return mlir::isa<mlir::ShapedType>(t);
  });
  bool cheap =
      (scalars ||
       mlir::isa<mlir::tensor::EmptyOp, mlir::linalg::FillOp,
                 mlir::tensor::ExpandShapeOp, mlir::tensor::CollapseShapeOp,
                 mlir::tensor::ExtractSliceOp>(d)) &&
      llvm::all_of(d->getOperands(),
                   [&](Value o) { return recomputable(o, memo); });
  memo[v] = cheap;
  return cheap;
}

enum class Recompute {
  View,  // a reshape or slice: recomputed, never saved
  Cheap, // memory-bound: saved or recomputed, as the cut finds
  Never, // a contraction that sums more, a layer, anything unknown: saved
};

// Products summed per output element that still count as memory-bound.
constexpr int64_t kMaxSummed = 4;

Recompute recomputeKind(mlir::Operation *op) {
  if (mlir::isa<mlir::tensor::ExpandShapeOp, mlir::tensor::CollapseShapeOp,
                mlir::tensor::ExtractSliceOp>(op))
    return Recompute::View;
  if (mlir::isa<UnaryOp, ReverseOp, ChunkDecaysOp, ChunkScanOp,
                mlir::tensor::PadOp, mlir::tensor::EmptyOp,
                mlir::linalg::FillOp>(op) ||
      mlir::isa<mlir::arith::ArithDialect>(op->getDialect()))
    return Recompute::Cheap;
  if (auto c = mlir::dyn_cast<ContractOp>(op)) {
    // Memory-bound while each output element sums a few products (a
    // complex multiply's pairs, say): the summed extents' product.
    auto spec = parseEinsumLetters(c.getSpec().str());
    if (!spec)
      return Recompute::Never;
    std::map<char, int64_t> extents; // of the summed letters
    for (auto [letters, v] : {std::pair{spec->input, c.getLhs()},
                              std::pair{spec->weights[0], c.getRhs()}}) {
      auto shape = mlir::cast<mlir::ShapedType>(v.getType()).getShape();
      for (auto [k, l] : llvm::enumerate(letters))
        if (spec->output.find(l) == std::string::npos)
          extents[l] =
              mlir::ShapedType::isDynamic(shape[k]) ? kMaxSummed + 1 : shape[k];
    }
    int64_t summed = 1;
    for (auto [l, n] : extents)
      summed = std::min(summed * n, kMaxSummed + 1);
    if (summed <= kMaxSummed)
      return Recompute::Cheap;
  }
  return Recompute::Never;
}

constexpr int64_t kLargest = int64_t(1) << 40;

int64_t saturatingProduct(int64_t a, int64_t b) {
  return b > 0 && a > kLargest / b ? kLargest : a * b;
}

int64_t staticElements(mlir::ShapedType t) {
  int64_t n = 1;
  for (int64_t d : t.getShape())
    if (!mlir::ShapedType::isDynamic(d))
      n = saturatingProduct(n, d);
  return n;
}

// Elements of `v` per unit of the arguments' dynamic extent (the batch):
// a collapsed [batch·L, d] counts L·d. Reshapes keep the count, a slice
// scales it, and any other op's dynamic extents are its operands' largest.
int64_t elementsPerBatch(Value v, llvm::DenseMap<Value, int64_t> &memo) {
  auto type = mlir::dyn_cast<mlir::RankedTensorType>(v.getType());
  if (!type)
    return 1;
  if (auto it = memo.find(v); it != memo.end())
    return it->second;
  const int64_t fixed = staticElements(type);
  int64_t n = fixed;
  mlir::Operation *d = v.getDefiningOp();
  if (d && type.getNumDynamicDims() > 0) {
    if (mlir::isa<mlir::tensor::ExpandShapeOp, mlir::tensor::CollapseShapeOp>(
            d)) {
      n = elementsPerBatch(d->getOperand(0), memo);
    } else {
      int64_t dynamic = 1;
      for (Value o : d->getOperands())
        if (auto t = mlir::dyn_cast<mlir::RankedTensorType>(o.getType());
            t && t.getNumDynamicDims() > 0)
          dynamic =
              std::max(dynamic, elementsPerBatch(o, memo) / staticElements(t));
      n = saturatingProduct(fixed, dynamic);
    }
  }
  memo[v] = n;
  return n;
}

using Graph = boost::adjacency_list<
    boost::vecS, boost::vecS, boost::directedS, boost::no_property,
    boost::property<
        boost::edge_capacity_t, int64_t,
        boost::property<
            boost::edge_residual_capacity_t, int64_t,
            boost::property<boost::edge_reverse_t,
                            boost::adjacency_list_traits<
                                boost::vecS, boost::vecS,
                                boost::directedS>::edge_descriptor>>>>;

} // namespace

llvm::SetVector<Value>
residualsToSave(llvm::ArrayRef<mlir::Operation *> forward,
                llvm::function_ref<bool(Value)> read) {
  llvm::DenseMap<Value, bool> memo;
  // The values that take part: tensors not recomputable from the
  // arguments; value k is nodes 2 + 2k (in) and 3 + 2k (out).
  llvm::DenseMap<Value, size_t> node;
  std::vector<Value> values;
  for (mlir::Operation *op : forward)
    for (Value r : op->getResults())
      if (mlir::isa<mlir::RankedTensorType>(r.getType()) &&
          !recomputable(r, memo)) {
        node[r] = values.size();
        values.push_back(r);
      }
  llvm::DenseMap<Value, int64_t> elements;
  auto bytes = [&](Value v) {
    auto t = mlir::cast<mlir::RankedTensorType>(v.getType());
    return saturatingProduct(
        elementsPerBatch(v, elements),
        std::max<int64_t>(1, t.getElementTypeBitWidth() / 8));
  };
  struct Edge {
    size_t from, to;
    int64_t width; // kUnbounded: no cut crosses it
  };
  constexpr int64_t kUnbounded = -1;
  std::vector<Edge> edges;
  const size_t source = 0, sink = 1;
  auto in = [](size_t k) { return 2 + 2 * k; };
  auto out = [](size_t k) { return 3 + 2 * k; };
  for (auto [k, v] : llvm::enumerate(values)) {
    mlir::Operation *op = v.getDefiningOp();
    Recompute kind = recomputeKind(op);
    edges.push_back(
        {in(k), out(k), kind == Recompute::View ? kUnbounded : bytes(v)});
    for (Value o : op->getOperands()) {
      if (auto it = node.find(o); it != node.end())
        edges.push_back({out(it->second), in(k), kUnbounded});
      else if (!recomputable(o, memo)) // a scalar the graph does not hold
        kind = Recompute::Never;
    }
    if (kind == Recompute::Never)
      edges.push_back({source, in(k), kUnbounded});
    if (read(v))
      edges.push_back({out(k), sink, kUnbounded});
  }
  // An unbounded edge is one wider than all finite ones together, and all
  // of them together must stay within int64_t (push-relabel sums the
  // source's): finite widths shrink in proportion where they would not.
  const int64_t limit = (int64_t(1) << 62) / int64_t(edges.size() + 1) / 2;
  long double total = 0;
  for (const Edge &e : edges)
    if (e.width != kUnbounded)
      total += (long double)e.width;
  const long double scale = total < limit ? 1.0L : limit / total;
  int64_t finite = 0;
  for (Edge &e : edges)
    if (e.width != kUnbounded) {
      e.width = std::max<int64_t>(1, int64_t((long double)e.width * scale));
      finite += e.width;
    }
  Graph g(2 + 2 * values.size());
  auto capacity = boost::get(boost::edge_capacity, g);
  auto reverse = boost::get(boost::edge_reverse, g);
  auto residual = boost::get(boost::edge_residual_capacity, g);
  for (const Edge &edge : edges) {
    auto e = boost::add_edge(edge.from, edge.to, g).first;
    auto back = boost::add_edge(edge.to, edge.from, g).first;
    capacity[e] = edge.width == kUnbounded ? finite + 1 : edge.width;
    capacity[back] = 0;
    reverse[e] = back;
    reverse[back] = e;
  }
  boost::push_relabel_max_flow(g, source, sink);
  // The sink's side: the nodes that still reach it through unsaturated
  // edges (the cut nearest the sink: of equal ones, least recomputed).
  std::vector<char> sinkSide(boost::num_vertices(g), 0);
  std::vector<size_t> queue{sink};
  sinkSide[sink] = 1;
  while (!queue.empty()) {
    size_t v = queue.back();
    queue.pop_back();
    for (auto e : boost::make_iterator_range(boost::out_edges(v, g))) {
      size_t u = boost::target(e, g);
      if (!sinkSide[u] && residual[reverse[e]] > 0) {
        sinkSide[u] = 1;
        queue.push_back(u);
      }
    }
  }
  llvm::SetVector<Value> saved;
  for (auto [k, v] : llvm::enumerate(values))
    if (!sinkSide[in(k)] && sinkSide[out(k)])
      saved.insert(v);
  return saved;
}

namespace {

mlir::Value indexConstant(mlir::OpBuilder &b, mlir::Location loc, int64_t n) {
  return mlir::arith::ConstantIndexOp::create(b, loc, n);
}

// Extent k of `v`, built at b's insertion point, read off what v's op
// shapes it from (ExtentSource.h, recursively); tensor.dim of v only where
// nothing tells.
Value extentOf(mlir::OpBuilder &b, mlir::Location loc, Value v, int64_t k) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  if (!type.isDynamicDim(k))
    return indexConstant(b, loc, type.getDimSize(k));
  auto source = extentSource(v, k);
  if (!source)
    return mlir::tensor::DimOp::create(b, loc, v, k);
  if (!source->size.isNull())
    return mlir::getValueOrCreateConstantIndexOp(b, loc, source->size);
  Value n;
  for (int64_t d : source->dims) {
    Value e = extentOf(b, loc, source->operand, d);
    n = n ? mlir::arith::MulIOp::create(b, loc, n, e).getResult() : e;
  }
  if (source->offset)
    n = mlir::arith::AddIOp::create(b, loc, n,
                                    indexConstant(b, loc, source->offset));
  return n;
}

} // namespace

bool readExtentsOffOperands(mlir::func::FuncOp f) {
  // Only the extents of values nothing else reads: the others are there
  // anyway, and their tensor.dim folds best as it is.
  llvm::SmallVector<mlir::tensor::DimOp> dims;
  f.walk([&](mlir::tensor::DimOp d) {
    Value v = d.getSource();
    if (v.getDefiningOp() && d.getConstantIndex() &&
        llvm::all_of(v.getUsers(), [](mlir::Operation *u) {
          return mlir::isa<mlir::tensor::DimOp>(u);
        }))
      dims.push_back(d);
  });
  bool changed = false;
  for (mlir::tensor::DimOp d : dims) {
    mlir::OpBuilder b(d);
    Value extent =
        extentOf(b, d.getLoc(), d.getSource(), *d.getConstantIndex());
    auto same = extent.getDefiningOp<mlir::tensor::DimOp>();
    if (same && same.getSource() == d.getSource()) {
      same->erase(); // nothing better than d itself
      continue;
    }
    d.replaceAllUsesWith(extent);
    d.erase();
    changed = true;
  }
  return changed;
}

} // namespace einstruct
