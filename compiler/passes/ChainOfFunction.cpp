#include "ChainOfFunction.h"
#include "CudaContract.h"
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

// Scratch buffers share workspace slots (ChainPlan::slots): in order of
// their first write, each takes a slot of its size whose last reader came
// before that write (strictly, so no step reads and writes one slot), else
// a new one. The SSD's backward at L = 4096 needs about half the memory.
void assignSlots(ChainPlan &plan) {
  const size_t n = plan.buffers.size();
  std::vector<int> first(n, -1), last(n, -1);
  for (int t = 0; t < int(plan.steps.size()); ++t)
    for (const auto *list :
         {&plan.steps[size_t(t)].in, &plan.steps[size_t(t)].out})
      for (int b : *list) {
        if (first[size_t(b)] < 0)
          first[size_t(b)] = t;
        last[size_t(b)] = t;
      }
  std::vector<size_t> order;
  for (size_t b = 0; b < n; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Scratch)
      order.push_back(b);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return first[x] < first[y]; });
  std::vector<int> busyUntil;
  for (size_t b : order) {
    ChainBuffer &buffer = plan.buffers[b];
    for (size_t k = 0; k < plan.slots.size() && buffer.slot < 0; ++k)
      if (plan.slots[k].value == buffer.elems.value &&
          plan.slots[k].power == buffer.elems.power && busyUntil[k] < first[b])
        buffer.slot = int(k);
    if (buffer.slot < 0) {
      buffer.slot = int(plan.slots.size());
      plan.slots.push_back(buffer.elems);
      busyUntil.push_back(-1);
    }
    busyUntil[size_t(buffer.slot)] = last[b];
  }
}

// Inputs and outputs stored as bfloat16: each input converted into a
// float32 scratch copy before the first step, each output computed in a
// float32 scratch buffer and converted after the last. Constant inputs
// (M2's DFT matrices, written in float32) and residuals stay float32.
void storeBoundaryAsBf16(ChainPlan &plan) {
  plan.bf16Boundary = true;
  const size_t n = plan.buffers.size();
  std::vector<int> inner(n, -1);
  for (size_t b = 0; b < n; ++b) {
    const ChainBuffer &x = plan.buffers[b];
    if (x.kind == ChainBuffer::Scratch ||
        (x.kind == ChainBuffer::Input &&
         (plan.constantInput[size_t(x.index)] ||
          plan.residualInput[size_t(x.index)])) ||
        (x.kind == ChainBuffer::Output && plan.residualOutput[size_t(x.index)]))
      continue;
    plan.buffers[b].bf16 = true;
    ChainBuffer f = plan.buffers[b];
    f.kind = ChainBuffer::Scratch;
    f.index = 0;
    f.bf16 = false;
    plan.buffers.push_back(f);
    inner[b] = int(plan.buffers.size()) - 1;
  }
  for (ChainStep &s : plan.steps)
    for (auto *list : {&s.in, &s.out})
      for (int &b : *list)
        if (inner[size_t(b)] >= 0)
          b = inner[size_t(b)];
  std::vector<ChainStep> steps;
  auto convert = [&](size_t b, bool input) {
    ChainStep c;
    c.kind = ChainStep::Convert;
    c.count = plan.buffers[b].elems;
    c.in = {input ? int(b) : inner[b]};
    c.out = {input ? inner[b] : int(b)};
    c.what =
        input ? "input " + std::to_string(plan.buffers[b].index) + " to float32"
              : "output " + std::to_string(plan.buffers[b].index) +
                    " to bfloat16";
    steps.push_back(c);
  };
  for (size_t b = 0; b < n; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Input && inner[b] >= 0)
      convert(b, true);
  steps.insert(steps.end(), plan.steps.begin(), plan.steps.end());
  for (size_t b = 0; b < n; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Output && inner[b] >= 0)
      convert(b, false);
  plan.steps = std::move(steps);
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

  ChainSize extentOf(Value v, int64_t d) const {
    auto t = type(v);
    if (!t.isDynamicDim(d))
      return {t.getDimSize(d), 0};
    auto at = dynamicExtent.find(v);
    return at == dynamicExtent.end() ? ChainSize{1, 1} : at->second;
  }

  // "[32*S, 64]".
  std::string shapeOf(Value v) const {
    std::string s = "[";
    for (int64_t d = 0; d < type(v).getRank(); ++d)
      s += (d ? ", " : "") + sizeText(extentOf(v, d));
    return s + "]";
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

  // The extent of dynamic dimension d of `op`'s result v, from what shapes
  // it: a reshape's groups, a contraction's letters, a tensor.empty's
  // sizes, a transpose's source; else an operand's same dimension (slices
  // and pads keep dynamic dimensions whole; elementwise ops, fills and the
  // SSD's ops, whose sequences come first).
  std::optional<ChainSize> inferExtent(mlir::Operation *op, Value v,
                                       int64_t d) const {
    if (auto c = mlir::dyn_cast<mlir::tensor::CollapseShapeOp>(op)) {
      ChainSize n;
      // A copy: the getter returns a temporary.
      const auto groups = c.getReassociationIndices();
      for (int64_t j : groups[size_t(d)])
        n = n * extentOf(c.getSrc(), j);
      return n.power <= 1 ? std::optional(n) : std::nullopt;
    }
    if (auto e = mlir::dyn_cast<mlir::tensor::ExpandShapeOp>(op)) {
      const auto groups = e.getReassociationIndices();
      for (auto [from, group] : llvm::enumerate(groups)) {
        if (!llvm::is_contained(group, d))
          continue;
        ChainSize whole = extentOf(e.getSrc(), int64_t(from));
        int64_t rest = 1;
        for (int64_t j : group)
          if (j != d)
            rest *= type(v).getDimSize(j);
        if (whole.value % rest)
          return std::nullopt;
        return ChainSize{whole.value / rest, whole.power};
      }
      return std::nullopt;
    }
    if (auto e = mlir::dyn_cast<mlir::tensor::EmptyOp>(op))
      return indexOf(e.getMixedSizes()[size_t(d)]);
    if (auto t = mlir::dyn_cast<mlir::linalg::TransposeOp>(op))
      return extentOf(t.getInput(), t.getPermutation()[size_t(d)]);
    if (auto c = mlir::dyn_cast<ContractOp>(op)) {
      auto spec = parseEinsumLetters(c.getSpec().str());
      if (!spec)
        return std::nullopt;
      const char letter = spec->output[size_t(d)];
      if (auto at = spec->input.find(letter); at != std::string::npos)
        return extentOf(c.getLhs(), int64_t(at));
      if (auto at = spec->weights[0].find(letter); at != std::string::npos)
        return extentOf(c.getRhs(), int64_t(at));
      return std::nullopt;
    }
    const bool ssd = mlir::isa<ChunkDecaysOp, ChunkDecaysGradOp, ChunkScanOp,
                               ChunkScanGradOp>(op);
    for (Value o : op->getOperands()) {
      auto t = mlir::dyn_cast<mlir::RankedTensorType>(o.getType());
      if (t && (t.getRank() == type(v).getRank() || (ssd && d == 0)) &&
          d < t.getRank() && t.isDynamicDim(d))
        return extentOf(o, d);
    }
    return std::nullopt;
  }

  // A new buffer of `v`'s type, not bound to v (scratch).
  int buffer(Value v, ChainBuffer::Kind kind = ChainBuffer::Scratch,
             int index = 0) {
    ChainBuffer b;
    b.kind = kind;
    b.index = index;
    for (int64_t d = 0; d < type(v).getRank(); ++d)
      b.elems = b.elems * extentOf(v, d);
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
    for (Value v : in) {
      auto at = bufferOf.find(v);
      if (at == bufferOf.end() || at->second < 0) {
        unheld = op;
        s.in.push_back(0);
      } else {
        s.in.push_back(at->second);
      }
    }
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
  mlir::LogicalResult remap(mlir::Operation *op, Value src, Value result,
                            const std::vector<Axis> &axes) {
    ChainStep s = step(ChainStep::Remap, op, {src}, {add(result)});
    auto strides = stridesOf(src);
    for (size_t d = 0; d < axes.size(); ++d) {
      const Axis &x = axes[d];
      const ChainSize stride = strides[size_t(x.from)];
      if (x.start != 0 && stride.power)
        return op->emitOpError()
               << "offsets dimension " << x.from
               << ", whose stride is dynamic: the CUDA chain's offsets are "
                  "static";
      s.base += x.start * stride.value;
      s.outDims.dims.push_back(extentOf(result, int64_t(d)));
      s.outDims.a.push_back({x.step * stride.value, stride.power});
      s.outDims.b.push_back({0, 0});
      s.lo.push_back({x.lo, 0});
      s.hi.push_back(x.hi.value ? x.hi : extentOf(result, int64_t(d)));
    }
    plan.steps.push_back(s);
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
    ChainStep s = step(ChainStep::Direct, op, {op.getLhs(), op.getRhs()},
                       {add(op.getResult())});
    if (kernel.getValue() == kCublasKernel) {
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
      auto ls = stridesOf(op.getLhs()), rs = stridesOf(op.getRhs());
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
    for (Value v : op->getResults()) {
      if (!isTensor(v))
        continue;
      if (mlir::failed(checkType(op, v)))
        return mlir::failure();
      for (int64_t d = 0; d < type(v).getRank(); ++d) {
        if (!type(v).isDynamicDim(d))
          continue;
        auto n = inferExtent(op, v, d);
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
      if (mlir::failed(checkStaticSlice(e)))
        return mlir::failure();
      std::vector<Axis> axes;
      for (int64_t d = 0; d < e.getSourceType().getRank(); ++d)
        axes.push_back({d, e.getStaticOffsets()[size_t(d)]});
      return remap(op, e.getSource(), e.getResult(), axes);
    }
    if (auto p = mlir::dyn_cast<mlir::tensor::PadOp>(op)) {
      if (mlir::failed(checkZeroPad(p)))
        return mlir::failure();
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
