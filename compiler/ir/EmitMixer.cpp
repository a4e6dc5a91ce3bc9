#include "EmitMixer.h"
#include "MixerParts.h"
#include "SlicePad.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <map>

namespace einstruct {

using namespace mixerir;

namespace mixerir {

// einstruct.contract with its result shaped from the operands' extents.
Value contract(mlir::OpBuilder &b, mlir::Location loc, const std::string &spec,
               Value lhs, Value rhs) {
  auto t = parseEinsumLetters(spec);
  std::map<char, int64_t> extent;
  for (auto [v, letters] : {std::pair{lhs, t->input}, {rhs, t->weights[0]}}) {
    auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
    for (size_t k = 0; k < letters.size(); ++k)
      extent[letters[k]] = type.getDimSize(int64_t(k));
  }
  llvm::SmallVector<int64_t> shape;
  for (char c : t->output)
    shape.push_back(extent.at(c));
  auto type = mlir::RankedTensorType::get(shape, b.getF32Type());
  return ContractOp::create(b, loc, type, lhs, rhs, b.getStringAttr(spec));
}

mlir::RankedTensorType tensor(mlir::OpBuilder &b,
                              llvm::ArrayRef<int64_t> shape) {
  return mlir::RankedTensorType::get(shape, b.getF32Type());
}

// The chunked SSD of x[b, L, H, P], a[b, L, H], B and C [b, L, N] (L =
// s.length) as emitSsd documents it: y[b, L, H, P].
Value ssdCore(mlir::OpBuilder &b, mlir::Location loc, const SsdShape &s,
              Value xSeq, Value aSeq, Value BSeq, Value CSeq) {
  const int64_t H = s.heads, P = s.headDim, N = s.state, Q = s.chunk,
                L = s.length, T = s.length / s.chunk;
  Value batch = mlir::tensor::DimOp::create(b, loc, xSeq, 0);
  // Sequences cut into chunks: x [b, T, Q, H, P], a [b, T, Q, H],
  // B and C [b, T, Q, N].
  auto chunked = [&](Value v, llvm::ArrayRef<int64_t> shape) {
    llvm::SmallVector<mlir::OpFoldResult> sizes = {batch};
    llvm::SmallVector<mlir::ReassociationIndices> groups = {{0}, {1, 2}};
    for (int64_t k = 1; k < int64_t(shape.size()); ++k) {
      sizes.push_back(b.getIndexAttr(shape[size_t(k)]));
      if (k > 2)
        groups.push_back({k});
    }
    return mlir::tensor::ExpandShapeOp::create(b, loc, tensor(b, shape), v,
                                               groups, sizes)
        .getResult();
  };
  Value x = chunked(xSeq, {kDyn, T, Q, H, P});
  Value a = chunked(aSeq, {kDyn, T, Q, H});
  Value B = chunked(BSeq, {kDyn, T, Q, N});
  Value C = chunked(CSeq, {kDyn, T, Q, N});
  auto decays = ChunkDecaysOp::create(
      b, loc, tensor(b, {kDyn, H, T, Q, Q}), tensor(b, {kDyn, H, T, Q}),
      tensor(b, {kDyn, H, T, Q}), tensor(b, {kDyn, H, T}), a);
  // Letters: n batch, h head, c/z chunk, l/s step in a chunk, p head_dim,
  // k state.
  // In-chunk (the quadratic, attention-like part): y_l += Σ_s (C_l·B_s)
  // within[l, s] x_s.
  Value cb = contract(b, loc, "nclk,ncsk->ncls", C, B);
  Value masked = contract(b, loc, "ncls,nhcls->nhcls", cb, decays.getWithin());
  Value yIn = contract(b, loc, "nhcls,ncshp->nclhp", masked, x);
  // Chunk states: Σ_s to_end[s] x_s ⊗ B_s.
  Value xDecayed = contract(b, loc, "nhcs,ncshp->ncshp", decays.getToEnd(), x);
  Value states = contract(b, loc, "ncshp,ncsk->nchpk", xDecayed, B);
  // States entering each chunk: the recurrence over chunks (state passing).
  Value entering = ChunkScanOp::create(b, loc, states.getType(), states,
                                       decays.getChunk());
  // Read out: y_l += from_start[l] C_l · state.
  Value cDecayed =
      contract(b, loc, "nhcl,nclk->nclhk", decays.getFromStart(), C);
  Value yOut = contract(b, loc, "nclhk,nchpk->nclhp", cDecayed, entering);
  Value y = mlir::arith::AddFOp::create(b, loc, yIn, yOut);
  return mlir::tensor::CollapseShapeOp::create(
      b, loc, tensor(b, {kDyn, L, H, P}), y,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
}

// ssdCore on L tokens of u = x ⊙ dt, a, B and C [b, L, ...], zero-padded
// after the end to the chunk's multiple s.length (causal: the padding
// changes nothing before it): y's first `keep` tokens [b, keep, H, P], one
// slice for the padding and Hydra's shift together.
Value paddedSsd(mlir::OpBuilder &b, mlir::Location loc, const SsdShape &s,
                int64_t L, int64_t keep, Value u, Value a, Value B, Value C) {
  auto padded = [&](Value v) {
    if (s.length == L)
      return v;
    const size_t rank =
        size_t(mlir::cast<mlir::RankedTensorType>(v.getType()).getRank());
    llvm::SmallVector<int64_t> low(rank, 0), high(rank, 0);
    high[1] = s.length - L;
    return zeroPad(b, loc, v, low, high);
  };
  // One at a time: argument evaluation order would make the IR's op order
  // the C++ compiler's.
  Value pu = padded(u), pa = padded(a), pB = padded(B), pC = padded(C);
  Value y = ssdCore(b, loc, s, pu, pa, pB, pC);
  if (keep == s.length)
    return y;
  return staticSlice(b, loc, y, {0, 0, 0, 0}, {kDyn, keep, s.heads, s.headDim});
}

// A function of `args`, each marked einstruct.constant from `firstConstant`
// on, returning `result`; the builder placed at its start.
mlir::func::FuncOp startFunction(mlir::OpBuilder &b, mlir::ModuleOp module,
                                 const std::string &name,
                                 llvm::ArrayRef<mlir::Type> args,
                                 mlir::Type result, unsigned firstConstant) {
  b.setInsertionPointToEnd(module.getBody());
  auto fn = mlir::func::FuncOp::create(b, b.getUnknownLoc(), name,
                                       b.getFunctionType(args, {result}));
  for (unsigned k = firstConstant; k < args.size(); ++k)
    fn.setArgAttr(k, kConstantArg, b.getUnitAttr());
  b.setInsertionPointToStart(fn.addEntryBlock());
  return fn;
}

} // namespace mixerir

void emitSsd(mlir::ModuleOp module, const MixerPlan &plan,
             const std::string &name) {
  mlir::OpBuilder b(module.getContext());
  mlir::Location loc = b.getUnknownLoc();
  const SsdShape &s = plan.ssd;
  const int64_t L = plan.length;
  // mixerOperands' x, dt, a, B, C; y shaped like x.
  auto types = operandTypes(b, plan);
  auto fn =
      startFunction(b, module, name, types, types[0], unsigned(types.size()));
  Value u =
      contract(b, loc, "nlhp,nlh->nlhp", fn.getArgument(0), fn.getArgument(1));
  mlir::func::ReturnOp::create(b, loc,
                               paddedSsd(b, loc, s, L, L, u, fn.getArgument(2),
                                         fn.getArgument(3), fn.getArgument(4)));
}

namespace mixerir {

// Hydra's quasiseparable mixer on x [b, L, H, P], dt and a [b, L, 2, H],
// B and C [b, L, 2, N], d [b, L, H] (emitHydra's function body).
Value hydraCore(mlir::OpBuilder &b, mlir::Location loc, const SsdShape &s,
                int64_t L, Value x, Value dt, Value a, Value B, Value C,
                Value d) {
  const int64_t H = s.heads, N = s.state;
  // d ⊙ x, the diagonal.
  Value y = contract(b, loc, "nlhp,nlh->nlhp", x, d);
  // The passes' shifted outputs are all zero on one token.
  for (int dir = 0; dir < 2 && L > 1; ++dir) {
    // Direction dir's half of [b, L, 2, E] as [b, L, E], flipped for the
    // backward pass.
    auto half = [&](Value v, int64_t E) -> Value {
      return mlir::tensor::CollapseShapeOp::create(
          b, loc, tensor(b, {kDyn, L, E}),
          staticSlice(b, loc, v, {0, 0, dir, 0}, {kDyn, L, 1, E}),
          llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1}, {2, 3}});
    };
    auto flipped = [&](Value v) {
      return dir == 1 ? ReverseOp::create(b, loc, v, 1).getResult() : v;
    };
    Value u = contract(b, loc, "nlhp,nlh->nlhp", x, half(dt, H));
    // One at a time, in order (argument evaluation order is the compiler's).
    Value fu = flipped(u), fa = flipped(half(a, H)), fB = flipped(half(B, N)),
          fC = flipped(half(C, N));
    // shift: token l takes the pass's token l − 1 (zero at 0); the
    // backward pass flipped back.
    Value pass = paddedSsd(b, loc, s, L, L - 1, fu, fa, fB, fC);
    Value shifted = zeroPad(b, loc, pass, {0, 1, 0, 0}, {0, 0, 0, 0});
    y = mlir::arith::AddFOp::create(b, loc, y, flipped(shifted));
  }
  return y;
}

// The function argument types of the plan's operands (mixerOperands: a
// per-sequence one with the batch first, dynamic); constants come after.
llvm::SmallVector<mlir::Type> operandTypes(mlir::OpBuilder &b,
                                           const MixerPlan &plan) {
  llvm::SmallVector<mlir::Type> types;
  for (const MixerOperand &op : mixerOperands(plan)) {
    llvm::SmallVector<int64_t> shape;
    if (op.perSequence)
      shape.push_back(kDyn);
    shape.append(op.shape.begin(), op.shape.end());
    types.push_back(tensor(b, shape));
  }
  return types;
}

} // namespace mixerir

void emitHydra(mlir::ModuleOp module, const MixerPlan &plan,
               const std::string &name) {
  mlir::OpBuilder b(module.getContext());
  mlir::Location loc = b.getUnknownLoc();
  // mixerOperands' x, dt, a, B, C, d; y shaped like x.
  auto types = operandTypes(b, plan);
  auto fn =
      startFunction(b, module, name, types, types[0], unsigned(types.size()));
  mlir::func::ReturnOp::create(b, loc,
                               hydraCore(b, loc, plan.ssd, plan.length,
                                         fn.getArgument(0), fn.getArgument(1),
                                         fn.getArgument(2), fn.getArgument(3),
                                         fn.getArgument(4), fn.getArgument(5)));
}

namespace {

// e^{sign·2πi·num/den} as (cos, sin), the angle reduced exactly first.
std::pair<double, double> rootOfUnity(int64_t num, int64_t den, int sign) {
  constexpr double kPi = 3.14159265358979323846;
  const double angle = sign * 2.0 * kPi * double(num % den) / double(den);
  return {std::cos(angle), std::sin(angle)};
}

// Multiplying by w = (re, im) as a 2×2 real matrix M[c, e], y[e] =
// Σ_c x[c]·M[c, e]: y = (x_re·re − x_im·im, x_re·im + x_im·re).
void putComplex(float *m, std::pair<double, double> w) {
  m[0] = float(w.first);   // [re][re]
  m[1] = float(w.second);  // [re][im]
  m[2] = float(-w.second); // [im][re]
  m[3] = float(w.first);   // [im][im]
}

} // namespace

namespace mixerir {

// The m2-conv of x [S, L, C] with k, k_rev (null when causal) [L, C] and
// D [C], the DFT constants in m2ConvConstants' order (emitM2Conv's
// function body).
Value m2ConvCore(mlir::OpBuilder &b, mlir::Location loc, const M2ConvShape &s,
                 Value x, Value k, Value kRev, Value D,
                 llvm::ArrayRef<Value> constants) {
  const int64_t n = s.b, J = s.rows, Jk = s.kernelRows, L = s.length,
                C = mlir::cast<mlir::RankedTensorType>(x.getType())
                        .getDimSize(2);
  Value Fx = constants[0], Fk = constants[1], Tw = constants[2],
        W = constants[3], Sg = constants[4], Wi = constants[5],
        Twi = constants[6], R = constants[7];
  // v [.., rows, C] zero-padded after its rows to `to`.
  auto padRows = [&](Value v, int64_t rows, int64_t to) {
    if (rows == to)
      return v;
    const int64_t rank =
        mlir::cast<mlir::RankedTensorType>(v.getType()).getRank();
    llvm::SmallVector<int64_t> low(size_t(rank), 0), high(size_t(rank), 0);
    high[size_t(rank - 2)] = to - rows;
    return zeroPad(b, loc, v, low, high);
  };
  // x on the grid [S, J, b, C]: token t at [t / b, t % b], zero past L.
  Value batch = mlir::tensor::DimOp::create(b, loc, x, 0);
  Value xGrid = mlir::tensor::ExpandShapeOp::create(
      b, loc, tensor(b, {kDyn, J, n, C}), padRows(x, L, J * n),
      llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1, 2}, {3}},
      llvm::ArrayRef<mlir::OpFoldResult>{batch, b.getIndexAttr(J),
                                         b.getIndexAttr(n), b.getIndexAttr(C)});
  // The kernel on its grid [Jk, b, C]: k's taps from lag 0; k_rev's tap r
  // multiplies x_{i+r+1}, the lag −(r+1), at b² − 1 − r (circularly over
  // the b² >= 2L points, so the two never meet; Jk = b rows).
  Value kernel = padRows(k, L, Jk * n);
  if (!s.causal && L > 1) {
    Value taps = staticSlice(b, loc, kRev, {0, 0}, {L - 1, C});
    Value reversed = ReverseOp::create(b, loc, taps, 0);
    Value placed = zeroPad(b, loc, reversed, {n * n - (L - 1), 0}, {0, 0});
    kernel = mlir::arith::AddFOp::create(b, loc, kernel, placed);
  }
  Value kGrid = mlir::tensor::ExpandShapeOp::create(
      b, loc, tensor(b, {Jk, n, C}), kernel,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0, 1}, {2}});
  // Letters: s sequence, d channel; j, a the grid's row and column of a
  // token (t = j·b + a); k, m those of a frequency (f = k + m·b); u, v
  // those of an output token (t = v·b + u); c, e, g real and imaginary
  // parts.
  // The channel d is every tensor's innermost index: the contractions
  // vectorize along it (the complex parts, 2 wide, would not).
  // The DFT of a real signal on the grid (`seq`: "s" for x's sequences,
  // "" for the kernel): over the rows (`rowDft` reads as many as the signal
  // fills), the twiddles, over the columns.
  auto dft = [&](const std::string &seq, Value v, Value rowDft) {
    Value rows = contract(b, loc, seq + "jad,jkc->" + seq + "kacd", v, rowDft);
    Value twiddled =
        contract(b, loc, seq + "kacd,kace->" + seq + "kaed", rows, Tw);
    return contract(b, loc, seq + "kacd,acme->" + seq + "kmed", twiddled, W);
  };
  // The kernel's DFT, once for the S sequences, as 2×2 real matrices.
  Value kMatrix = contract(b, loc, "kmgd,gce->kmced", dft("", kGrid, Fk), Sg);
  // x's DFT, its product with the kernel's, and the inverse.
  Value xFreq = dft("s", xGrid, Fx);
  Value product = contract(b, loc, "skmcd,kmced->skmed", xFreq, kMatrix);
  Value columns = contract(b, loc, "skmcd,mcue->skued", product, Wi);
  Value untwiddled = contract(b, loc, "skucd,kuce->skued", columns, Twi);
  Value conv = contract(b, loc, "skucd,kcv->svud", untwiddled, R);
  // Back to [S, L, C]: the grid's tokens past L dropped.
  conv = mlir::tensor::CollapseShapeOp::create(
      b, loc, tensor(b, {kDyn, J * n, C}), conv,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1, 2}, {3}});
  if (J * n != L)
    conv = staticSlice(b, loc, conv, {0, 0, 0}, {kDyn, L, C});
  Value skip = contract(b, loc, "sld,d->sld", x, D);
  return mlir::arith::AddFOp::create(b, loc, conv, skip);
}

} // namespace mixerir

void emitM2Conv(mlir::ModuleOp module, const M2ConvShape &s, int64_t channels,
                const std::string &name) {
  mlir::OpBuilder b(module.getContext());
  const int64_t C = channels, L = s.length;
  auto seqType = tensor(b, {kDyn, L, C});
  llvm::SmallVector<mlir::Type> args = {seqType, tensor(b, {L, C})};
  if (!s.causal)
    args.push_back(tensor(b, {L, C})); // k_rev
  args.push_back(tensor(b, {C}));
  const unsigned firstConstant = unsigned(args.size());
  for (const auto &shape : m2ConvConstantShapes(s))
    args.push_back(tensor(b, shape));
  auto fn = startFunction(b, module, name, args, seqType, firstConstant);
  llvm::SmallVector<Value> dft(fn.getArguments().drop_front(firstConstant));
  mlir::func::ReturnOp::create(
      b, b.getUnknownLoc(),
      m2ConvCore(b, b.getUnknownLoc(), s, fn.getArgument(0), fn.getArgument(1),
                 s.causal ? Value() : fn.getArgument(2),
                 fn.getArgument(firstConstant - 1), dft));
}

std::vector<std::vector<int64_t>> m2ConvConstantShapes(const M2ConvShape &s) {
  const int64_t n = s.b, J = s.rows;
  return {{J, n, 2}, {s.kernelRows, n, 2}, {n, n, 2, 2}, {n, 2, n, 2},
          {2, 2, 2}, {n, 2, n, 2},         {n, n, 2, 2}, {n, 2, J}};
}

std::vector<M2ConvConstant> m2ConvConstants(const M2ConvShape &s) {
  const int64_t n = s.b, N = n * n, J = s.rows;
  auto rowDft = [&](int64_t rows) {
    std::vector<float> f(size_t(rows * n * 2));
    for (int64_t j = 0; j < rows; ++j)
      for (int64_t k = 0; k < n; ++k) {
        auto w = rootOfUnity(j * k, n, -1);
        f[size_t((j * n + k) * 2)] = float(w.first);
        f[size_t((j * n + k) * 2 + 1)] = float(w.second);
      }
    return f;
  };
  // [p, q, 2, 2] with the 2×2 block of w(p, q).
  auto blocks = [&](auto w) {
    std::vector<float> m(size_t(n * n * 4));
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = 0; q < n; ++q)
        putComplex(m.data() + (p * n + q) * 4, w(p, q));
    return m;
  };
  // [p, 2, q, 2]: the column DFT, w(p, q) between part c and part e.
  auto columnDft = [&](int sign) {
    std::vector<float> m(size_t(n * 2 * n * 2));
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = 0; q < n; ++q) {
        float block[4];
        putComplex(block, rootOfUnity(p * q, n, sign));
        for (int c = 0; c < 2; ++c)
          for (int e = 0; e < 2; ++e)
            m[size_t(((p * 2 + c) * n + q) * 2 + e)] = block[c * 2 + e];
      }
    return m;
  };
  std::vector<float> Sg(8, 0.f); // Sg[g, c, e]: K's part g into its matrix
  Sg[0 * 4 + 0 * 2 + 0] = 1;     // re at [re][re]
  Sg[0 * 4 + 1 * 2 + 1] = 1;     // re at [im][im]
  Sg[1 * 4 + 0 * 2 + 1] = 1;     // im at [re][im]
  Sg[1 * 4 + 1 * 2 + 0] = -1;    // −im at [im][re]
  std::vector<float> R(size_t(n * 2 * J));
  for (int64_t k = 0; k < n; ++k)
    for (int64_t v = 0; v < J; ++v) {
      auto w = rootOfUnity(k * v, n, 1);
      R[size_t((k * 2 + 0) * J + v)] = float(w.first);
      R[size_t((k * 2 + 1) * J + v)] = float(-w.second);
    }
  std::vector<std::vector<float>> values = {
      rowDft(J),
      rowDft(s.kernelRows),
      blocks([&](int64_t k, int64_t a) { return rootOfUnity(k * a, N, -1); }),
      columnDft(-1),
      Sg,
      columnDft(1),
      blocks([&](int64_t k, int64_t u) {
        auto w = rootOfUnity(k * u, N, 1);
        return std::pair{w.first / double(N), w.second / double(N)};
      }),
      R};
  std::vector<M2ConvConstant> out;
  auto shapes = m2ConvConstantShapes(s);
  for (size_t k = 0; k < values.size(); ++k)
    out.push_back({shapes[k], std::move(values[k])});
  return out;
}

std::vector<M2ConvConstant> mixerConstants(const MixerPlan &plan) {
  std::vector<M2ConvConstant> out;
  if (plan.family == "m2-block")
    out.push_back(hyenaDecay(plan.m2, plan.length));
  if (plan.family == "m2-conv" || plan.family == "m2-block")
    for (auto &c : m2ConvConstants(plan.conv))
      out.push_back(std::move(c));
  return out;
}

void emitSequenceEinsum(mlir::ModuleOp module, const EinsumTerm &t,
                        int64_t channels, const std::string &name) {
  mlir::OpBuilder b(module.getContext());
  mlir::Location loc = b.getUnknownLoc();
  const int64_t L = t.inDim();
  auto shapeOf = [&](const std::string &letters) {
    auto v = t.shape(letters);
    return llvm::SmallVector<int64_t>(v.begin(), v.end());
  };
  const std::string &w1 = t.weights.at(0), &w2 = t.weights.at(1);
  auto xType = tensor(b, {kDyn, L, channels});
  auto fn = startFunction(
      b, module, name, {xType, tensor(b, shapeOf(w1)), tensor(b, shapeOf(w2))},
      xType, 3);
  // Two letters the term leaves free: the sequence and the channel.
  std::string free;
  for (char c = 'a'; c <= 'z' && free.size() < 2; ++c)
    if (!t.sizes.count(c))
      free += c;
  const std::string seq(1, free[0]), chan(1, free[1]);
  // x[S, L, C] seen as [S, input letters..., C], and y back.
  auto spread = [&](const std::string &letters) {
    llvm::SmallVector<int64_t> shape = {kDyn};
    auto inner = shapeOf(letters);
    shape.append(inner.begin(), inner.end());
    shape.push_back(channels);
    llvm::SmallVector<mlir::ReassociationIndices> groups = {{0}, {}, {}};
    for (size_t k = 0; k < letters.size(); ++k)
      groups[1].push_back(int64_t(k + 1));
    groups[2].push_back(int64_t(letters.size() + 1));
    return std::pair{tensor(b, shape), groups};
  };
  auto [inType, inGroups] = spread(t.input);
  Value batch = mlir::tensor::DimOp::create(b, loc, fn.getArgument(0), 0);
  llvm::SmallVector<mlir::OpFoldResult> sizes = {batch};
  for (int64_t e : shapeOf(t.input))
    sizes.push_back(b.getIndexAttr(e));
  sizes.push_back(b.getIndexAttr(channels));
  Value x = mlir::tensor::ExpandShapeOp::create(
      b, loc, inType, fn.getArgument(0), inGroups, sizes);
  // The middle operand keeps what the second weight or y still needs.
  std::string middle;
  for (char c : t.input + w1)
    if (middle.find(c) == std::string::npos &&
        (w2.find(c) != std::string::npos ||
         t.output.find(c) != std::string::npos))
      middle += c;
  Value z = contract(
      b, loc, seq + t.input + chan + "," + w1 + "->" + seq + middle + chan, x,
      fn.getArgument(1));
  Value y = contract(
      b, loc, seq + middle + chan + "," + w2 + "->" + seq + t.output + chan, z,
      fn.getArgument(2));
  auto [outType, outGroups] = spread(t.output);
  (void)outType;
  y = mlir::tensor::CollapseShapeOp::create(b, loc, xType, y, outGroups);
  mlir::func::ReturnOp::create(b, loc, y);
}

void emitMixer(mlir::ModuleOp module, const MixerPlan &plan,
               const std::string &name) {
  if (plan.family == "m2-block")
    emitM2Block(module, plan, name);
  else if (plan.isBlock())
    emitHydraBlock(module, plan, name);
  else if (plan.family == "hydra")
    emitHydra(module, plan, name);
  else if (plan.chunkedSsd())
    emitSsd(module, plan, name);
  else if (plan.family == "m2-conv")
    emitM2Conv(module, plan.conv, plan.channelBlock, name);
  else
    emitSequenceEinsum(module, plan.monarch, plan.channelBlock, name);
}

} // namespace einstruct
