// Whole blocks as one function each (EmitMixer.h's emitHydraBlock and
// emitM2Block): the projections, convolutions, activations, filters and
// norm around the mixer bodies MixerParts.h shares with the mixers.
#include "EmitMixer.h"
#include "MixerParts.h"
#include "SlicePad.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

namespace einstruct {

using namespace mixerir;

namespace {

// A tensor of ones shaped like v without its last dimension.
Value onesBeside(mlir::OpBuilder &b, mlir::Location loc, Value v) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  llvm::SmallVector<int64_t> shape(type.getShape().drop_back());
  llvm::SmallVector<Value> dynamic;
  for (size_t k = 0; k < shape.size(); ++k)
    if (shape[k] == kDyn)
      dynamic.push_back(mlir::tensor::DimOp::create(b, loc, v, int64_t(k)));
  Value empty =
      mlir::tensor::EmptyOp::create(b, loc, shape, b.getF32Type(), dynamic);
  Value one = mlir::arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1));
  return mlir::linalg::FillOp::create(b, loc, one, empty).getResult(0);
}

// v + bias broadcast along v's last dimension: an outer product with ones,
// whose gradient for the bias is then a contraction too.
Value addBias(mlir::OpBuilder &b, mlir::Location loc, Value v, Value bias) {
  const int64_t rank =
      mlir::cast<mlir::RankedTensorType>(v.getType()).getRank();
  std::string letters = std::string("abcdefgh").substr(0, size_t(rank));
  Value spread = contract(b, loc,
                          letters.substr(0, letters.size() - 1) + "," +
                              letters.back() + "->" + letters,
                          onesBeside(b, loc, v), bias);
  return mlir::arith::AddFOp::create(b, loc, v, spread);
}

// v [b, L, E] split as [b, L, sizes...] (row-major).
Value expanded(mlir::OpBuilder &b, mlir::Location loc, Value v,
               llvm::ArrayRef<int64_t> tail) {
  Value batch = mlir::tensor::DimOp::create(b, loc, v, 0);
  const int64_t L =
      mlir::cast<mlir::RankedTensorType>(v.getType()).getDimSize(1);
  llvm::SmallVector<int64_t> shape = {kDyn, L};
  llvm::SmallVector<mlir::OpFoldResult> sizes = {batch, b.getIndexAttr(L)};
  mlir::ReassociationIndices last;
  for (int64_t t : tail) {
    last.push_back(int64_t(shape.size()));
    shape.push_back(t);
    sizes.push_back(b.getIndexAttr(t));
  }
  return mlir::tensor::ExpandShapeOp::create(
      b, loc, tensor(b, shape), v,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1}, last}, sizes);
}

// The depthwise convolution of x [b, L, C] with w [C, 1, K] and bias [C],
// `before` zeros padded before x and K − 1 − before after it (torch's
// Conv1d with groups = C and padding K // 2 for odd K: before = K / 2;
// padding K − 1 cut back to L, causal: before = K − 1):
// y[l] = Σ_k w[:, k] ⊙ x[l + k − before] + bias.
Value depthwiseConv(mlir::OpBuilder &b, mlir::Location loc, Value x, Value w,
                    Value bias, int64_t before) {
  auto type = mlir::cast<mlir::RankedTensorType>(x.getType());
  const int64_t L = type.getDimSize(1), C = type.getDimSize(2),
                K = mlir::cast<mlir::RankedTensorType>(w.getType())
                        .getDimSize(2);
  Value padded = zeroPad(b, loc, x, {0, before, 0}, {0, K - 1 - before, 0});
  Value y;
  for (int64_t k = 0; k < K; ++k) {
    Value tap = mlir::tensor::CollapseShapeOp::create(
        b, loc, tensor(b, {C}), staticSlice(b, loc, w, {0, 0, k}, {C, 1, 1}),
        llvm::ArrayRef<mlir::ReassociationIndices>{{0, 1, 2}});
    Value window = staticSlice(b, loc, padded, {0, k, 0}, {kDyn, L, C});
    Value term = contract(b, loc, "blc,c->blc", window, tap);
    y = y ? mlir::arith::AddFOp::create(b, loc, y, term).getResult() : term;
  }
  return addBias(b, loc, y, bias);
}

// x [b, L, d_in] through the block projection `p` on the b·L tokens: the
// dense einstruct.layer "i,oi->o" of torch's Linear weight [d_out, d_in],
// or one einstruct.layer per term of p's structure, summed (emitLayer's
// form), `weights` its weights in order.
Value projection(mlir::OpBuilder &b, mlir::Location loc, Value x,
                 llvm::ArrayRef<Value> weights, const BlockProjection &p) {
  const int64_t dIn = p.dIn, dOut = p.dOut,
                L = mlir::cast<mlir::RankedTensorType>(x.getType())
                        .getDimSize(1);
  llvm::SmallVector<mlir::ReassociationIndices> groups = {{0, 1}, {2}};
  Value tokens = mlir::tensor::CollapseShapeOp::create(
      b, loc, tensor(b, {kDyn, dIn}), x, groups);
  auto layerOp = [&](const EinsumTerm &t, mlir::ValueRange w,
                     mlir::DenseF64ArrayAttr theta) -> Value {
    llvm::SmallVector<mlir::NamedAttribute> sizes;
    for (auto [c, n] : t.sizes)
      sizes.push_back(
          b.getNamedAttr(std::string(1, c), b.getI64IntegerAttr(n)));
    return LayerOp::create(b, loc, tensor(b, {kDyn, dOut}), tokens, w,
                           b.getStringAttr(t.str()), b.getDictionaryAttr(sizes),
                           b.getI64IntegerAttr(dIn), b.getI64IntegerAttr(dOut),
                           theta, nullptr, nullptr);
  };
  Value y;
  if (!p.layer) {
    auto dense = makeEinsum("i,oi->o", {{'i', dIn}, {'o', dOut}});
    y = layerOp(*dense, weights, nullptr);
  } else {
    auto theta = p.layer->theta ? b.getDenseF64ArrayAttr(p.layer->theta->v)
                                : mlir::DenseF64ArrayAttr();
    size_t at = 0;
    for (const EinsumTerm &t : p.layer->terms) {
      Value term = layerOp(t, weights.slice(at, t.weights.size()), theta);
      at += t.weights.size();
      y = y ? mlir::arith::AddFOp::create(b, loc, y, term).getResult() : term;
    }
  }
  Value batch = mlir::tensor::DimOp::create(b, loc, x, 0);
  return mlir::tensor::ExpandShapeOp::create(
      b, loc, tensor(b, {kDyn, L, dOut}), y, groups,
      llvm::ArrayRef<mlir::OpFoldResult>{batch, b.getIndexAttr(L),
                                         b.getIndexAttr(dOut)});
}

// A block function's arguments, read in order; a projection's weights as
// one group (one for a dense one, the structure's otherwise).
struct Arguments {
  mlir::func::FuncOp fn;
  unsigned at = 0;
  Value next() { return fn.getArgument(at++); }
  llvm::SmallVector<Value> weights(const BlockProjection &p) {
    llvm::SmallVector<Value> w;
    const size_t n = p.layer ? weightShapes(*p.layer).size() : 1;
    for (size_t i = 0; i < n; ++i)
      w.push_back(next());
    return w;
  }
};

} // namespace

void emitHydraBlock(mlir::ModuleOp module, const MixerPlan &plan,
                    const std::string &name) {
  const HydraBlockShape &k = plan.block;
  const SsdShape &s = plan.ssd;
  // The ones that biases spread along are linalg.fill (callers load the
  // dialects the mixers use, which did not include linalg).
  module.getContext()->getOrLoadDialect<mlir::linalg::LinalgDialect>();
  mlir::OpBuilder b(module.getContext());
  mlir::Location loc = b.getUnknownLoc();
  const int64_t L = plan.length, E = k.inner, H = k.heads, N = k.state,
                Cc = k.convChannels();
  auto types = operandTypes(b, plan);
  auto fn =
      startFunction(b, module, name, types, types[0], unsigned(types.size()));
  Arguments in{fn};
  auto next = [&] { return in.next(); };
  auto weights = [&](const BlockProjection &p) { return in.weights(p); };
  // In argument order: x, in_proj's weights, conv1d.weight, conv1d.bias,
  // dt_bias, A_log, D, fc_D.weight, norm_weight, out_proj's weights.
  Value u = next();
  auto inW = weights(plan.analysis.projections[0]);
  Value convW = next(), convB = next(), dtBias = next(), aLog = next(),
        D = next(), fcD = next(), normW = next();
  auto outW = weights(plan.analysis.projections[1]);
  auto unary = [&](Value v, llvm::StringRef kind, double scale = 1,
                   double shift = 0) -> Value {
    return UnaryOp::create(b, loc, v, kind, scale, shift);
  };
  // in_proj, split into z, xBC and dt [b, L, 2, H] (one half per pass).
  Value zxbcdt = projection(b, loc, u, inW, plan.analysis.projections[0]);
  Value z = staticSlice(b, loc, zxbcdt, {0, 0, 0}, {kDyn, L, E});
  Value xBC = staticSlice(b, loc, zxbcdt, {0, 0, E}, {kDyn, L, Cc});
  Value dtRaw = staticSlice(b, loc, zxbcdt, {0, 0, E + Cc}, {kDyn, L, 2 * H});
  // dt = softplus(dt + dt_bias) (the bias shared by both halves); a = dt·A,
  // A = −exp(A_log).
  Value dt = unary(addBias(b, loc, expanded(b, loc, dtRaw, {2, H}), dtBias),
                   "softplus");
  Value A = unary(unary(aLog, "exp"), "identity", -1);
  Value a = contract(b, loc, "blkh,h->blkh", dt, A);
  // SiLU of the convolution; x, then B and C of each pass: [B₀ C₀ B₁ C₁].
  xBC = unary(depthwiseConv(b, loc, xBC, convW, convB, k.conv / 2), "silu");
  Value x = staticSlice(b, loc, xBC, {0, 0, 0}, {kDyn, L, E});
  Value BC = expanded(
      b, loc, staticSlice(b, loc, xBC, {0, 0, E}, {kDyn, L, 4 * N}), {2, 2, N});
  auto pick = [&](int64_t which) -> Value {
    return mlir::tensor::CollapseShapeOp::create(
        b, loc, tensor(b, {kDyn, L, 2, N}),
        staticSlice(b, loc, BC, {0, 0, 0, which, 0}, {kDyn, L, 2, 1, N}),
        llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1}, {2}, {3, 4}});
  };
  Value B = pick(0), C = pick(1);
  // The skip's scale fc_D(x) + D, then the mixer.
  Value skip = addBias(
      b, loc, projection(b, loc, x, {fcD}, {"fc_D", E, H, std::nullopt}), D);
  Value y4 = hydraCore(b, loc, s, L, expanded(b, loc, x, {H, k.headDim}), dt, a,
                       B, C, skip);
  Value y = mlir::tensor::CollapseShapeOp::create(
      b, loc, tensor(b, {kDyn, L, E}), y4,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1}, {2, 3}});
  // RMSNormGated (norm before gate): y · rsqrt(mean(y²) + 1e-5) · weight ·
  // silu(z), then out_proj.
  Value scale = unary(contract(b, loc, "blc,blc->bl", y, y), "rsqrt",
                      1.0 / double(E), 1e-5);
  y = contract(b, loc, "blc,bl->blc", y, scale);
  y = contract(b, loc, "blc,c->blc", y, normW);
  y = contract(b, loc, "blc,blc->blc", y, unary(z, "silu"));
  mlir::func::ReturnOp::create(
      b, loc, projection(b, loc, y, outW, plan.analysis.projections[1]));
}

// The decay of Hyena's filter on L tokens (hyena_utils.py's
// ExponentialModulation with its defaults: fast_decay_pct 0.3,
// slow_decay_pct 1.5, target 1e-2): exp(−t_l·|δ_c|), t = linspace(0, 1,
// l_max), δ = linspace(ln(1e-2)/1.5, ln(1e-2)/0.3, d), as [L, d].
M2ConvConstant hyenaDecay(const M2BlockShape &m, int64_t L) {
  const int64_t d = m.dModel;
  M2ConvConstant c{{L, d}, std::vector<float>(size_t(L * d))};
  const double lo = std::log(1e-2) / 1.5, hi = std::log(1e-2) / 0.3;
  for (int64_t l = 0; l < L; ++l) {
    const double t = m.lMax > 1 ? double(l) / double(m.lMax - 1) : 0.0;
    for (int64_t ch = 0; ch < d; ++ch) {
      const double delta =
          d > 1 ? lo + (hi - lo) * double(ch) / double(d - 1) : lo;
      c.values[size_t(l * d + ch)] = float(std::exp(-t * std::abs(delta)));
    }
  }
  return c;
}

void emitM2Block(mlir::ModuleOp module, const MixerPlan &plan,
                 const std::string &name) {
  const M2BlockShape &m = plan.m2;
  const M2ConvShape &s = plan.conv;
  module.getContext()->getOrLoadDialect<mlir::linalg::LinalgDialect>();
  mlir::OpBuilder b(module.getContext());
  mlir::Location loc = b.getUnknownLoc();
  const int64_t L = s.length, d = m.dModel, o = m.order,
                K = M2BlockShape::kShortTaps;
  auto args = operandTypes(b, plan);
  const unsigned firstConstant = unsigned(args.size());
  args.push_back(tensor(b, {L, d})); // the filters' decay
  for (const auto &shape : m2ConvConstantShapes(s))
    args.push_back(tensor(b, shape));
  auto xType = args[0];
  auto fn = startFunction(b, module, name, args, xType, firstConstant);
  Arguments in{fn};
  auto next = [&] { return in.next(); };
  auto weights = [&](const BlockProjection &p) { return in.weights(p); };
  // In argument order (mixerOperands').
  Value x = next();
  auto inW = weights(plan.analysis.projections[0]);
  Value inB = next(), shortW = next(), shortB = next(), z = next(),
        freq = next();
  // Hyena's implicit filter: an MLP over the positional embedding's first
  // L rows, sin(w_mod · freq ⊙ (h·Wᵀ + b)) after each of the first three
  // layers, the last without a bias, times the decay.
  Value position = mlir::tensor::CollapseShapeOp::create(
      b, loc, tensor(b, {L, 3}), staticSlice(b, loc, z, {0, 0, 0}, {1, L, 3}),
      llvm::ArrayRef<mlir::ReassociationIndices>{{0, 1}, {2}});
  Value freqs = mlir::tensor::CollapseShapeOp::create(
      b, loc, tensor(b, {o}), freq,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0, 1}});
  Value decay = fn.getArgument(firstConstant);
  auto filter = [&]() -> Value {
    Value h = position;
    for (int layer = 0; layer < 3; ++layer) {
      Value w = next(), bias = next();
      h = addBias(b, loc, contract(b, loc, "lj,oj->lo", h, w), bias);
      h = UnaryOp::create(b, loc, contract(b, loc, "lo,o->lo", h, freqs), "sin",
                          m.wMod);
    }
    Value k = contract(b, loc, "lo,co->lc", h, next());
    return contract(b, loc, "lc,lc->lc", k, decay);
  };
  Value k = filter(), kRev = s.causal ? Value() : filter();
  Value D = next();
  auto outW = weights(plan.analysis.projections[1]);
  Value outB = next();
  // in_linear, the short causal convolution (padding 2 cut back to L),
  // split into x1, x2, v; the long convolution of v ⊙ x1; gated by x2;
  // out_linear.
  Value u = addBias(
      b, loc, projection(b, loc, x, inW, plan.analysis.projections[0]), inB);
  u = depthwiseConv(b, loc, u, shortW, shortB, K - 1);
  auto third = [&](int64_t i) {
    return staticSlice(b, loc, u, {0, 0, i * d}, {kDyn, L, d});
  };
  Value x1 = third(0), x2 = third(1), v = third(2);
  llvm::SmallVector<Value> dft(fn.getArguments().drop_front(firstConstant + 1));
  Value y = m2ConvCore(b, loc, s, contract(b, loc, "blc,blc->blc", v, x1), k,
                       kRev, D, dft);
  y = contract(b, loc, "blc,blc->blc", y, x2);
  mlir::func::ReturnOp::create(
      b, loc,
      addBias(b, loc, projection(b, loc, y, outW, plan.analysis.projections[1]),
              outB));
}

} // namespace einstruct
