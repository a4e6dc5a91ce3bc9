#include "ChainOfFunction.h"
#include "ChainBuffers.h"
#include "CudaContract.h"
#include "ExtentSource.h"
#include "compiler/ir/SlicePad.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "llvm/ADT/DenseMap.h"

namespace einstruct {

namespace {

using mlir::Value;

std::string sizeText(const ChainSize &n) {
  if (!n.power)
    return std::to_string(n.value);
  return n.value == 1 ? "S" : std::to_string(n.value) + "*S";
}

struct Reader {
  mlir::func::FuncOp f;
  ChainPlan plan;
  llvm::DenseMap<Value, int> bufferOf;
  // The extent of each value's dynamic dimension (arguments': S).
  llvm::DenseMap<Value, ChainSize> dynamicExtent;

  static mlir::RankedTensorType type(Value v) {
    return mlir::cast<mlir::RankedTensorType>(v.getType());
  }

  // Extent d of v: a value not read yet (a reader looking ahead) has its
  // extent inferred here.
  ChainSize extentOf(Value v, int64_t d) const {
    auto t = type(v);
    if (!t.isDynamicDim(d))
      return {t.getDimSize(d), 0};
    auto at = dynamicExtent.find(v);
    if (at != dynamicExtent.end())
      return at->second;
    auto inferred = v.getDefiningOp() ? inferExtent(v, d) : std::nullopt;
    return inferred.value_or(ChainSize{1, 1});
  }

  // "[32*S, 64]".
  std::string shapeOf(Value v) const {
    std::string s = "[";
    for (int64_t d = 0; d < type(v).getRank(); ++d)
      s += (d ? ", " : "") + sizeText(extentOf(v, d));
    return s + "]";
  }

  ChainSize elemsOf(Value v) const {
    ChainSize n;
    for (int64_t d = 0; d < type(v).getRank(); ++d)
      n = n * extentOf(v, d);
    return n;
  }

  // Row-major strides of v's dimensions.
  std::vector<ChainSize> stridesOf(Value v) const {
    std::vector<ChainSize> s(size_t(type(v).getRank()));
    ChainSize run;
    for (int64_t d = type(v).getRank(); d-- > 0;) {
      s[size_t(d)] = run;
      run = run * extentOf(v, d);
    }
    return s;
  }

  // Values not copied (yet): a slice, transpose or reversal, each the Remap
  // step that would copy it (no output buffer yet). Remap and Direct steps
  // read such a view in place, through its strides; any other reader
  // copies it first (materialize), and one nothing reads is never copied.
  llvm::DenseMap<Value, ChainStep> views;

  // Where v's element 0 is (buffer and offset) and its dimensions' strides.
  struct Layout {
    int buffer = 0;
    int64_t base = 0;
    std::vector<ChainSize> strides;
  };
  Layout layoutOf(mlir::Operation *reader, Value v) {
    if (auto at = views.find(v); at != views.end())
      return {at->second.in[0], at->second.base, at->second.outDims.a};
    return {held(reader, v), 0, stridesOf(v)};
  }

  // A reshape of a view, as a view where the strides allow: a collapsed
  // group's dimensions must step through memory as one (each stride the
  // next's times its extent; extents of 1 aside), and an expanded
  // dimension's parts take its stride times the extents inside them.
  std::optional<ChainStep> reshaped(ChainStep view, mlir::Operation *op) const {
    Value result = op->getResult(0);
    const auto &dims = view.outDims.dims, &a = view.outDims.a;
    std::vector<ChainSize> strides(size_t(type(result).getRank()));
    auto one = [](ChainSize n) { return n.value == 1 && !n.power; };
    if (auto c = mlir::dyn_cast<mlir::tensor::CollapseShapeOp>(op)) {
      const auto groups = c.getReassociationIndices(); // a temporary
      for (auto [g, group] : llvm::enumerate(groups)) {
        std::optional<size_t> inner; // the last dimension past extent 1
        for (size_t j = group.size(); j-- > 0;) {
          const size_t d = size_t(group[j]);
          if (one(dims[d]))
            continue;
          if (inner) {
            const ChainSize next = a[*inner] * dims[*inner];
            if (next.power > 1 || !(next == a[d]))
              return std::nullopt;
          } else {
            strides[g] = a[d];
          }
          inner = d;
        }
      }
    } else {
      auto e = mlir::cast<mlir::tensor::ExpandShapeOp>(op);
      const auto groups = e.getReassociationIndices();
      for (auto [g, group] : llvm::enumerate(groups)) {
        ChainSize run = a[g];
        for (size_t j = group.size(); j-- > 0;) {
          strides[size_t(group[j])] = run;
          if (j)
            run = run * extentOf(result, group[j]);
          if (run.power > 1)
            return std::nullopt;
        }
      }
    }
    view.outDims.dims.clear();
    for (int64_t d = 0; d < type(result).getRank(); ++d)
      view.outDims.dims.push_back(extentOf(result, d));
    view.outDims.a = strides;
    view.outDims.b.assign(strides.size(), {0, 0});
    view.lo.assign(strides.size(), {0, 0});
    view.hi = view.outDims.dims;
    return view;
  }

  // Whether the direct kernel reads `view` in place as c's operand: when
  // its rows stay contiguous (each thread's neighbour reads the
  // neighbouring element, as from a copy) or it is small beside the result
  // (a broadcast operand, read from cache). cuBLAS takes packed operands.
  bool readsInPlace(ContractOp c, const ChainStep &view) const {
    auto kernel = c->getAttrOfType<mlir::StringAttr>(kCudaKernelAttr);
    if (!kernel || kernel.getValue() != kDirectKernel)
      return false;
    const ChainSize out = elemsOf(c.getResult());
    ChainSize elems;
    for (const ChainSize &n : view.outDims.dims)
      elems = elems * n;
    const ChainSize inner = view.outDims.a.back();
    return (!inner.power && (inner.value == 1 || inner.value == -1)) ||
           elems.power < out.power ||
           (elems.power == out.power && 16 * elems.value <= out.value);
  }

  // Whether every reader of v, `view`, reads it in place: remaps compose
  // with it, reshapes where the strides allow, direct contractions as
  // above. Else it is copied where it is defined, as a result is: a copy
  // made later would keep its source alive longer.
  bool staysView(Value v, const ChainStep &view) const {
    for (mlir::Operation *u : v.getUsers()) {
      if (mlir::isa<mlir::tensor::DimOp, mlir::tensor::ExtractSliceOp,
                    mlir::linalg::TransposeOp, ReverseOp, mlir::tensor::PadOp>(
              u))
        continue;
      if (mlir::isa<mlir::tensor::ExpandShapeOp, mlir::tensor::CollapseShapeOp>(
              u)) {
        auto next = reshaped(view, u);
        if (next && staysView(u->getResult(0), *next))
          continue;
        return false;
      }
      auto c = mlir::dyn_cast<ContractOp>(u);
      if (!c || !readsInPlace(c, view))
        return false;
    }
    return true;
  }

  // a + b where the last step wrote one term, a remap or direct
  // contraction nothing else reads: that step adds the other term as it
  // writes (`accumulate`), and its buffer holds the sum. One kernel and no
  // term buffer, where autodiff accumulates a gradient right after
  // computing a contribution (the other term is older).
  bool addedByLastStep(mlir::arith::AddFOp a) {
    if (plan.steps.empty())
      return false;
    ChainStep &last = plan.steps.back();
    if ((last.kind != ChainStep::Remap && last.kind != ChainStep::Direct) ||
        last.accumulate)
      return false;
    for (unsigned k : {0u, 1u}) {
      Value term = a->getOperand(k), other = a->getOperand(1 - k);
      auto at = bufferOf.find(term);
      if (at == bufferOf.end() || at->second != last.out[0] ||
          !term.hasOneUse() || views.count(other))
        continue;
      auto held = bufferOf.find(other);
      if (held == bufferOf.end() || held->second < 0 ||
          held->second == last.out[0])
        return false;
      last.in.push_back(held->second);
      last.accumulate = true;
      bufferOf[a.getResult()] = last.out[0];
      return true;
    }
    return false;
  }

  // The buffer holding v for `reader`, copying a view first.
  int held(mlir::Operation *reader, Value v) {
    materialize(v);
    auto at = bufferOf.find(v);
    if (at == bufferOf.end() || at->second < 0) {
      unheld = reader;
      return 0;
    }
    return at->second;
  }
  void materialize(Value v) {
    auto at = views.find(v);
    if (at == views.end())
      return;
    ChainStep copy = std::move(at->second);
    views.erase(at);
    copy.out = {add(v)};
    plan.steps.push_back(std::move(copy));
  }

  // An index value as a multiple of S, where the IR says which: constants,
  // tensor.dim, and products, exact quotients and sums of them.
  std::optional<ChainSize> indexOf(mlir::OpFoldResult r) const {
    if (auto n = mlir::getConstantIntValue(r))
      return ChainSize{*n, 0};
    Value v = mlir::cast<Value>(r);
    mlir::Operation *op = v.getDefiningOp();
    if (auto dim = mlir::dyn_cast_or_null<mlir::tensor::DimOp>(op)) {
      auto k = dim.getConstantIndex();
      if (!k || !mlir::isa<mlir::RankedTensorType>(dim.getSource().getType()))
        return std::nullopt;
      return extentOf(dim.getSource(), *k);
    }
    if (!op || op->getNumOperands() != 2)
      return std::nullopt;
    auto a = indexOf(op->getOperand(0)), b = indexOf(op->getOperand(1));
    if (!a || !b)
      return std::nullopt;
    if (mlir::isa<mlir::arith::MulIOp>(op) && a->power + b->power <= 1)
      return *a * *b;
    if (mlir::isa<mlir::arith::DivSIOp, mlir::arith::DivUIOp>(op) &&
        !b->power && b->value > 0 && a->value % b->value == 0)
      return ChainSize{a->value / b->value, a->power};
    if (mlir::isa<mlir::arith::AddIOp>(op) && a->power == b->power)
      return ChainSize{a->value + b->value, a->power};
    return std::nullopt;
  }

  // The extent of v's dynamic dimension d, from the rule the residual cut
  // shares (ExtentSource.h), where that is a known multiple of S.
  std::optional<ChainSize> inferExtent(Value v, int64_t d) const {
    auto source = extentSource(v, d);
    if (!source)
      return std::nullopt;
    if (!source->size.isNull())
      return indexOf(source->size);
    ChainSize n;
    for (int64_t j : source->dims)
      n = n * extentOf(source->operand, j);
    if (n.power > 1 || (n.power && source->offset))
      return std::nullopt;
    return ChainSize{n.value + source->offset, n.power};
  }

  // A new buffer of `v`'s type, not bound to v (scratch).
  int buffer(Value v, ChainBuffer::Kind kind = ChainBuffer::Scratch,
             int index = 0) {
    ChainBuffer b;
    b.kind = kind;
    b.index = index;
    b.elems = elemsOf(v);
    b.shape = shapeOf(v);
    plan.buffers.push_back(b);
    return int(plan.buffers.size()) - 1;
  }
  // A new buffer holding `v`.
  int add(Value v, ChainBuffer::Kind kind = ChainBuffer::Scratch,
          int index = 0) {
    int b = buffer(v, kind, index);
    bufferOf[v] = b;
    return b;
  }

  mlir::LogicalResult checkType(mlir::Operation *op, Value v) {
    auto t = mlir::dyn_cast<mlir::RankedTensorType>(v.getType());
    if (!t || !t.getElementType().isF32())
      return op->emitOpError() << "the CUDA chain kernels take f32 tensors, "
                                  "not "
                               << v.getType();
    if (t.getNumDynamicDims() > 1)
      return op->emitOpError()
             << "has " << t.getNumDynamicDims() << " dynamic dimensions in "
             << t << ": a CUDA chain has one runtime extent (the sequences)";
    if (t.getRank() > 8)
      return op->emitOpError()
             << "rank " << t.getRank() << " is past the CUDA chain kernels' 8";
    return mlir::success();
  }

  // Set when an op reads a value no buffer holds (a bare tensor.empty).
  mlir::Operation *unheld = nullptr;

  ChainStep step(ChainStep::Kind kind, mlir::Operation *op,
                 std::vector<Value> in, std::vector<int> out) {
    ChainStep s;
    s.kind = kind;
    for (Value v : in)
      s.in.push_back(held(op, v));
    s.out = std::move(out);
    std::string text;
    llvm::raw_string_ostream os(text);
    op->getName().print(os);
    if (auto c = mlir::dyn_cast<ContractOp>(op))
      os << " " << c.getSpec();
    s.what = text;
    return s;
  }

  // A result dimension of a Remap: source dimension `from`, read at
  // start + step·k for result index k in [lo, hi) (zero elsewhere; hi 0:
  // the whole result extent).
  struct Axis {
    int64_t from;
    int64_t start = 0;
    int step = 1;
    int64_t lo = 0;
    ChainSize hi{0, 0};
  };
  // A Remap with no zeros (a slice, transpose or reversal) is a view
  // (`views`) where its readers take one; src may be one, read in place.
  mlir::LogicalResult remap(mlir::Operation *op, Value src, Value result,
                            const std::vector<Axis> &axes) {
    ChainStep s = step(ChainStep::Remap, op, {}, {});
    Layout from = layoutOf(op, src);
    s.in = {from.buffer};
    s.base = from.base;
    bool zeros = false;
    for (size_t d = 0; d < axes.size(); ++d) {
      const Axis &x = axes[d];
      const ChainSize stride = from.strides[size_t(x.from)];
      if (x.start != 0 && stride.power)
        return op->emitOpError()
               << "offsets dimension " << x.from
               << ", whose stride is dynamic: the CUDA chain's offsets are "
                  "static";
      zeros |= x.lo != 0 || x.hi.value != 0;
      s.base += x.start * stride.value;
      s.outDims.dims.push_back(extentOf(result, int64_t(d)));
      s.outDims.a.push_back({x.step * stride.value, stride.power});
      s.outDims.b.push_back({0, 0});
      s.lo.push_back({x.lo, 0});
      s.hi.push_back(x.hi.value ? x.hi : extentOf(result, int64_t(d)));
    }
    if (zeros || !staysView(result, s)) {
      s.out = {add(result)};
      plan.steps.push_back(s);
    } else {
      views[result] = std::move(s);
    }
    return mlir::success();
  }

  mlir::LogicalResult contract(ContractOp op) {
    auto kernel = op->getAttrOfType<mlir::StringAttr>(kCudaKernelAttr);
    if (!kernel)
      return op.emitOpError()
             << "has no " << kCudaKernelAttr << " (run --einstruct-plan-cuda)";
    if (mlir::failed(checkCudaKernel(op, kernel.getValue())))
      return mlir::failure();
    auto roles = contractRoles(op);
    if (mlir::failed(roles))
      return mlir::failure();
    const std::string &lhs = roles->lhs, &rhs = roles->rhs, &out = roles->out;
    auto size = [&](const std::string &letters) {
      ChainSize n;
      for (char c : letters) {
        size_t at = lhs.find(c);
        n = n * (at != std::string::npos
                     ? extentOf(op.getLhs(), int64_t(at))
                     : extentOf(op.getRhs(), int64_t(rhs.find(c))));
      }
      return n;
    };
    const bool gemm = kernel.getValue() == kCublasKernel;
    auto inPlace = [&](Value v) {
      if (auto at = views.find(v);
          at != views.end() && !readsInPlace(op, at->second))
        materialize(v);
    };
    inPlace(op.getLhs());
    inPlace(op.getRhs());
    Layout ll = layoutOf(op, op.getLhs()), rl = layoutOf(op, op.getRhs());
    ChainStep s = step(ChainStep::Direct, op, {}, {add(op.getResult())});
    s.in = {ll.buffer, rl.buffer};
    if (gemm) {
      auto form = gemmForm(lhs, rhs, out); // checked above
      // Row-major out[b][x][y] = Σ_k P[b][x][k]·Q[b][k][y] is column-major
      // outᵀ (y × x) = Qᵀ·Pᵀ: A is Q, B is P.
      const ChainSize X = size(form->x), Y = size(form->y), K = size(form->k);
      s.kind = ChainStep::Gemm;
      if (form->xFromLhs)
        std::swap(s.in[0], s.in[1]);
      s.m = Y;
      s.n = X;
      s.k = K;
      s.transA = form->qYFirst;
      s.lda = form->qYFirst ? K : Y;
      s.transB = form->pKFirst;
      s.ldb = form->pKFirst ? X : K;
      s.ldc = Y;
      s.strideA = Y * K;
      s.strideB = X * K;
      s.strideC = X * Y;
      s.batch = size(form->batch);
    } else {
      const auto &ls = ll.strides, &rs = rl.strides;
      s.baseA = ll.base;
      s.baseB = rl.base;
      auto fill = [&](ChainStep::Dims &d, const std::string &letters) {
        for (char c : letters) {
          size_t l = lhs.find(c), r = rhs.find(c);
          d.dims.push_back(size(std::string(1, c)));
          d.a.push_back(l == std::string::npos ? ChainSize{0, 0} : ls[l]);
          d.b.push_back(r == std::string::npos ? ChainSize{0, 0} : rs[r]);
        }
      };
      if (roles->k.size() > 8)
        return op.emitOpError() << "sums over " << roles->k.size()
                                << " letters, past the direct kernel's 8";
      fill(s.outDims, out);
      fill(s.sumDims, roles->k);
    }
    plan.steps.push_back(s);
    return mlir::success();
  }

  mlir::LogicalResult operation(mlir::Operation *op) {
    auto isTensor = [](Value v) {
      return mlir::isa<mlir::TensorType>(v.getType());
    };
    // The slices and pads the kernels take at all, before their extents.
    if (auto e = mlir::dyn_cast<mlir::tensor::ExtractSliceOp>(op);
        e && mlir::failed(checkStaticSlice(e)))
      return mlir::failure();
    if (auto p = mlir::dyn_cast<mlir::tensor::PadOp>(op);
        p && mlir::failed(checkZeroPad(p)))
      return mlir::failure();
    for (Value v : op->getResults()) {
      if (!isTensor(v))
        continue;
      if (mlir::failed(checkType(op, v)))
        return mlir::failure();
      for (int64_t d = 0; d < type(v).getRank(); ++d) {
        if (!type(v).isDynamicDim(d))
          continue;
        auto n = inferExtent(v, d);
        if (!n)
          return op->emitOpError()
                 << "gives dynamic dimension " << d << " of " << v.getType()
                 << " an extent that is not a known multiple of the call's "
                    "S";
        dynamicExtent[v] = *n;
      }
    }
    // Scalars (extents, a fill's value): read where they are used.
    if (llvm::none_of(op->getResults(), isTensor) &&
        (mlir::isa<mlir::tensor::DimOp>(op) ||
         llvm::none_of(op->getOperands(), isTensor)))
      return mlir::success();
    if (mlir::isa<mlir::tensor::ExpandShapeOp, mlir::tensor::CollapseShapeOp>(
            op)) {
      if (auto at = views.find(op->getOperand(0)); at != views.end())
        if (auto view = reshaped(at->second, op)) {
          views[op->getResult(0)] = std::move(*view);
          return mlir::success();
        }
      materialize(op->getOperand(0));
      auto at = bufferOf.find(op->getOperand(0));
      bufferOf[op->getResult(0)] = at == bufferOf.end() ? -1 : at->second;
      return mlir::success();
    }
    // Only a destination: the op writing it gets a buffer of its own (two
    // writers may share one tensor.empty after CSE).
    if (auto e = mlir::dyn_cast<mlir::tensor::EmptyOp>(op)) {
      bufferOf[e.getResult()] = -1;
      return mlir::success();
    }
    if (auto fill = mlir::dyn_cast<mlir::linalg::FillOp>(op)) {
      auto c = fill.getInputs()[0].getDefiningOp<mlir::arith::ConstantOp>();
      auto value = c ? mlir::dyn_cast<mlir::FloatAttr>(c.getValue()) : nullptr;
      if (!value)
        return op->emitOpError() << "the CUDA chain fills with constants only";
      int b = add(fill.getResult(0));
      ChainStep s = step(ChainStep::Fill, op, {}, {b});
      s.count = plan.buffers[size_t(b)].elems;
      s.value = value.getValueAsDouble();
      plan.steps.push_back(s);
      return mlir::success();
    }
    if (auto u = mlir::dyn_cast<UnaryOp>(op)) {
      ChainStep s =
          step(ChainStep::Map, op, {u.getInput()}, {add(u.getResult())});
      s.count = plan.buffers[size_t(s.out[0])].elems;
      s.unary = int(llvm::find(unaryKinds(), u.getKind()) -
                    unaryKinds().begin()); // the verifier's list
      s.scale = u.getScale().convertToDouble();
      s.shift = u.getShift().convertToDouble();
      s.what += " " + u.getKind().str();
      plan.steps.push_back(s);
      return mlir::success();
    }
    if (auto t = mlir::dyn_cast<mlir::linalg::TransposeOp>(op)) {
      std::vector<Axis> axes;
      for (int64_t d : t.getPermutation())
        axes.push_back({d});
      return remap(op, t.getInput(), t.getResult()[0], axes);
    }
    if (auto r = mlir::dyn_cast<ReverseOp>(op)) {
      std::vector<Axis> axes;
      for (int64_t d = 0; d < type(r.getInput()).getRank(); ++d)
        axes.push_back({d});
      Axis &flip = axes[size_t(r.getDim())];
      flip.start = type(r.getInput()).getDimSize(r.getDim()) - 1;
      flip.step = -1;
      return remap(op, r.getInput(), r.getResult(), axes);
    }
    if (auto e = mlir::dyn_cast<mlir::tensor::ExtractSliceOp>(op)) {
      std::vector<Axis> axes;
      for (int64_t d = 0; d < e.getSourceType().getRank(); ++d)
        axes.push_back({d, e.getStaticOffsets()[size_t(d)]});
      return remap(op, e.getSource(), e.getResult(), axes);
    }
    if (auto p = mlir::dyn_cast<mlir::tensor::PadOp>(op)) {
      std::vector<Axis> axes;
      auto src = p.getSourceType();
      for (int64_t d = 0; d < src.getRank(); ++d) {
        const int64_t low = p.getStaticLow()[size_t(d)];
        axes.push_back(
            src.isDynamicDim(d)
                ? Axis{d}
                : Axis{d, -low, 1, low, {src.getDimSize(d) + low, 0}});
      }
      return remap(op, p.getSource(), p.getResult(), axes);
    }
    if (auto a = mlir::dyn_cast<mlir::arith::AddFOp>(op)) {
      if (addedByLastStep(a))
        return mlir::success();
      ChainStep s = step(ChainStep::Add, op, {a.getLhs(), a.getRhs()},
                         {add(a.getResult())});
      s.count = plan.buffers[size_t(s.out[0])].elems;
      plan.steps.push_back(s);
      return mlir::success();
    }
    if (auto c = mlir::dyn_cast<ContractOp>(op))
      return contract(c);
    // a[n, c, q, h]
    auto ssdSizes = [&](ChainStep &s, Value a) {
      auto t = type(a);
      s.seqs = extentOf(a, 0);
      s.chunks = t.getDimSize(1);
      s.steps = t.getDimSize(2);
      s.heads = t.getDimSize(3);
    };
    // states[n, c, h, p, k]
    auto scanSizes = [&](ChainStep &s, Value states) {
      auto t = type(states);
      s.seqs = extentOf(states, 0);
      s.chunks = t.getDimSize(1);
      s.heads = t.getDimSize(2);
      s.pk = t.getDimSize(3) * t.getDimSize(4);
    };
    if (auto d = mlir::dyn_cast<ChunkDecaysOp>(op)) {
      ChainStep s = step(ChainStep::Decays, op, {d.getA()}, {});
      for (Value r : d->getResults())
        s.out.push_back(add(r));
      ssdSizes(s, d.getA());
      plan.steps.push_back(s);
      return mlir::success();
    }
    if (auto d = mlir::dyn_cast<ChunkDecaysGradOp>(op)) {
      ChainStep s = step(ChainStep::DecaysGrad, op,
                         {d.getA(), d.getDwithin(), d.getDtoEnd(),
                          d.getDfromStart(), d.getDchunk()},
                         {add(d.getDa())});
      // Q floats of scratch per segment, as large as da.
      s.out.push_back(buffer(d.getDa()));
      ssdSizes(s, d.getA());
      plan.steps.push_back(s);
      return mlir::success();
    }
    if (auto sc = mlir::dyn_cast<ChunkScanOp>(op)) {
      ChainStep s = step(ChainStep::Scan, op, {sc.getStates(), sc.getDecay()},
                         {add(sc.getEntering())});
      scanSizes(s, sc.getStates());
      plan.steps.push_back(s);
      return mlir::success();
    }
    if (auto g = mlir::dyn_cast<ChunkScanGradOp>(op)) {
      // The entering states again, then the recurrence backwards, then the
      // decays' cotangents from both.
      int entering = buffer(g.getStates());
      ChainStep fwd =
          step(ChainStep::Scan, op, {g.getStates(), g.getDecay()}, {entering});
      scanSizes(fwd, g.getStates());
      ChainStep back =
          step(ChainStep::ScanGrad, op, {g.getDecay(), g.getDentering()},
               {add(g.getDstates())});
      scanSizes(back, g.getStates());
      ChainStep decay = back;
      decay.kind = ChainStep::ScanDecayGrad;
      decay.in = {back.out[0], entering};
      decay.out = {add(g.getDdecay())};
      plan.steps.insert(plan.steps.end(), {fwd, back, decay});
      return mlir::success();
    }
    return op->emitOpError() << "is not an op the CUDA chain kernels run";
  }
};

} // namespace

bool isChainFunction(mlir::func::FuncOp f) {
  bool layer = false, chain = false;
  f.walk([&](mlir::Operation *op) {
    layer |= mlir::isa<LayerOp, MoeLayerOp, MoeLayerGradOp, RouteOp>(op);
    chain |= mlir::isa<ContractOp, ChunkDecaysOp, ChunkScanOp,
                       ChunkDecaysGradOp, ChunkScanGradOp>(op);
  });
  return chain && !layer;
}

Result<ChainPlan>
chainOfFunction(mlir::func::FuncOp f, bool bf16Boundary,
                const std::vector<ChainSize> &argumentExtents) {
  auto fail = [&](mlir::Operation *at, const std::string &why) {
    at->emitError() << why;
    return Result<ChainPlan>(Error{"@" + f.getSymName().str() + ": " + why});
  };
  if (f.isExternal())
    return fail(f, "has no body");
  if (!f.getBody().hasOneBlock())
    return fail(f, "has more than one block");
  Reader r;
  r.f = f;
  r.plan.name = f.getSymName().str();
  for (auto [k, arg] : llvm::enumerate(f.getArguments())) {
    if (mlir::failed(r.checkType(f, arg)))
      return Error{"@" + r.plan.name + ": an argument's type"};
    if (k < argumentExtents.size())
      r.dynamicExtent[arg] = argumentExtents[k];
    r.add(arg, ChainBuffer::Input, int(k));
    r.plan.constantInput.push_back(
        bool(f.getArgAttr(unsigned(k), kConstantArg)));
    r.plan.residualInput.push_back(
        bool(f.getArgAttr(unsigned(k), kResidualAttr)));
  }
  r.plan.inputs = int(f.getNumArguments());
  // Diagnostics go to the context's handler; the failure's text is the
  // op's name, as the handler shows where.
  for (mlir::Operation &op : f.getBody().front()) {
    if (auto ret = mlir::dyn_cast<mlir::func::ReturnOp>(op)) {
      for (auto [k, v] : llvm::enumerate(ret.getOperands())) {
        ChainSize extent{1, 1};
        for (int64_t d = 0; d < Reader::type(v).getRank(); ++d)
          if (Reader::type(v).isDynamicDim(d))
            extent = r.extentOf(v, d);
        r.plan.outputExtents.push_back(extent);
        r.plan.residualOutput.push_back(
            bool(f.getResultAttr(unsigned(k), kResidualAttr)));
        r.materialize(v);
        auto at = r.bufferOf.find(v);
        if (at == r.bufferOf.end() || at->second < 0)
          return fail(&op, "returns a tensor nothing wrote");
        int b = at->second;
        ChainBuffer &held = r.plan.buffers[size_t(b)];
        if (held.kind == ChainBuffer::Scratch) {
          held.kind = ChainBuffer::Output;
          held.index = int(k);
          held.shape = r.shapeOf(v);
          continue;
        }
        // An argument returned, or one value returned twice: a copy.
        ChainStep s = r.step(ChainStep::Copy, &op, {v}, {});
        s.out.push_back(r.buffer(v, ChainBuffer::Output, int(k)));
        s.count = r.plan.buffers[size_t(b)].elems;
        r.plan.steps.push_back(s);
      }
      r.plan.outputs = int(ret.getNumOperands());
      continue;
    }
    if (mlir::failed(r.operation(&op)))
      return Error{"@" + r.plan.name + ": '" +
                   op.getName().getStringRef().str() +
                   "' cannot run as a CUDA chain step"};
    if (r.unheld)
      return fail(&op, "reads a tensor nothing wrote (a bare tensor.empty)");
  }
  if (bf16Boundary)
    storeBoundaryAsBf16(r.plan);
  assignSlots(r.plan);
  return r.plan;
}

} // namespace einstruct
