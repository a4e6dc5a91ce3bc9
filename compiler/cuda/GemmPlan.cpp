#include "compiler/cuda/GemmPlan.h"

#include <climits>
#include <fmt/format.h>

namespace einstruct {
namespace {

bool has(const std::string &s, char c) { return s.find(c) != std::string::npos; }

// Row-major element stride of `c` in an operand named by `letters` (0 when
// absent).
int64_t strideOf(const EinsumTerm &t, const std::string &letters, char c) {
  auto at = letters.find(c);
  if (at == std::string::npos)
    return 0;
  return t.extent(letters.substr(at + 1));
}

// One term read by role: block letter k, summed i, output o.
struct TermShape {
  int64_t K = 1, I = 1, O = 1;
  int64_t xK = 0, xI = 0, wK = 0, wO = 0, wI = 0, yK = 0, yO = 0;
  int64_t inDim = 0, outDim = 0, wElems = 0;
};

Result<TermShape> readTerm(const EinsumTerm &t, size_t index) {
  const std::string &x = t.input, &w = t.weights[0], &y = t.output;
  const std::string where = fmt::format("term {} ({})", index + 1, t.str());
  char k = 0, i = 0, o = 0;
  auto one = [&](char &slot, char c, const char *role) -> Result<bool> {
    if (slot)
      return Error{fmt::format("{}: the cuBLAS path takes one {} letter, not "
                               "'{}' and '{}'",
                               where, role, slot, c)};
    slot = c;
    return true;
  };
  for (char c : x + w + y) {
    const bool inX = has(x, c), inW = has(w, c), inY = has(y, c);
    Result<bool> ok = true;
    if (inX && inW && inY)
      ok = k == c ? Result<bool>(true) : one(k, c, "block");
    else if (inX && inW)
      ok = i == c ? Result<bool>(true) : one(i, c, "summed");
    else if (inW && inY)
      ok = o == c ? Result<bool>(true) : one(o, c, "output");
    else
      return Error{fmt::format("{}: '{}' is not shared by the weight and x or "
                               "y",
                               where, c)};
    if (!ok)
      return Error{ok.error()};
  }
  TermShape s;
  auto size = [&](char c) { return c ? t.sizes.at(c) : int64_t(1); };
  s.K = size(k), s.I = size(i), s.O = size(o);
  s.xK = strideOf(t, x, k), s.xI = strideOf(t, x, i);
  s.wK = strideOf(t, w, k), s.wO = strideOf(t, w, o), s.wI = strideOf(t, w, i);
  s.yK = strideOf(t, y, k), s.yO = strideOf(t, y, o);
  s.inDim = t.inDim(), s.outDim = t.outDim(), s.wElems = t.extent(w);
  // cuBLAS reads each block of W as a matrix with unit stride along one of
  // its dimensions (of more than one element).
  const bool unitI = s.I == 1 || s.wI == 1, unitO = s.O == 1 || s.wO == 1;
  if (!(s.I > 1 && s.O > 1 ? s.wI == 1 || s.wO == 1 : unitI && unitO))
    return Error{fmt::format("{}: the weight's innermost letter is the block "
                             "letter; cuBLAS needs a summed or an output "
                             "letter there",
                             where)};
  return s;
}

GemmStep gather(GemmBuffer strided, GemmBuffer packed, int64_t K, int64_t M,
                int64_t sK, int64_t sE, int64_t row) {
  GemmStep s{GemmStep::Gather, {}, {}, {}};
  s.copy = {strided, packed, K, M, sK, sE, row, row, false};
  return s;
}
GemmStep scatter(GemmBuffer strided, GemmBuffer packed, int64_t K, int64_t M,
                 int64_t sK, int64_t sE, int64_t row, bool accumulate) {
  GemmStep s{GemmStep::Scatter, {}, {}, {}};
  s.copy = {strided, packed, K, M, sK, sE, row, row, accumulate};
  return s;
}
GemmStep fill(GemmBuffer b, int64_t from, int64_t row) {
  GemmStep s{GemmStep::Fill, {}, {}, {}};
  s.fill = {b, from, row};
  return s;
}
GemmStep gemm(const GemmCall &c) {
  GemmStep s{GemmStep::Gemm, c, {}, {}};
  return s;
}

// How a term's token-side operand (x or y side) is addressed by a GEMM:
// in place (ld = the row, stride = the block's) or packed block-major.
struct Side {
  bool direct;
  GemmBuffer buffer;
  int64_t ld, stride;
};

} // namespace

bool isGemmLayer(const Layer &layer) {
  if (layer.terms.empty() || layer.experts)
    return false;
  for (const auto &t : layer.terms)
    if (t.weights.size() != 1)
      return false;
  return true;
}

Result<GemmPlan> planGemm(const Layer &layer, const CudaTarget &target) {
  if (!isGemmLayer(layer))
    return Error{"the cuBLAS path takes layers whose terms have one weight "
                 "each"};
  GemmPlan p;
  p.layer = layer;
  p.target = target;
  const int64_t dIn = layer.dIn, dOut = layer.dOut;
  int64_t inDim = 0, outDim = 0;
  for (size_t j = 0; j < layer.terms.size(); ++j) {
    const EinsumTerm &t = layer.terms[j];
    auto s = readTerm(t, j);
    if (!s)
      return Error{s.error()};
    if (j == 0)
      inDim = s->inDim, outDim = s->outDim;
    else if (s->inDim != inDim || s->outDim != outDim)
      return Error{fmt::format("term {} is {} -> {}; term 1 is {} -> {}",
                               j + 1, s->inDim, s->outDim, inDim, outDim)};
    for (int64_t v : {s->K * s->I * s->O, s->wO, s->wI, dIn, dOut, s->I,
                      s->O, s->K})
      if (v > INT_MAX)
        return Error{"a size exceeds cuBLAS's 32-bit dimensions"};
    const int64_t K = s->K, I = s->I, O = s->O;
    p.weightElems.push_back(s->wElems);
    p.xsElems = std::max(p.xsElems, K * I);
    p.ysElems = std::max(p.ysElems, K * O);

    // x side (x, dx) and y side (y, dy): in place where the summed (output)
    // letter has unit stride and the row holds the structure's columns.
    const bool xDirect = (I == 1 || s->xI == 1) && dIn >= inDim;
    const bool yDirect = (O == 1 || s->yO == 1) && dOut >= outDim;
    auto xSide = [&](GemmBuffer b) {
      return xDirect ? Side{true, b, dIn, s->xK} : Side{false, GemmBuffer::XS, K * I, I};
    };
    auto ySide = [&](GemmBuffer b) {
      return yDirect ? Side{true, b, dOut, s->yK} : Side{false, GemmBuffer::YS, K * O, O};
    };
    // W_k as cuBLAS sees it: unit stride in i ("OI": column-major I × O,
    // i.e. W_kᵀ) or in o ("IO": column-major O × I, i.e. W_k).
    const bool oi = I == 1 ? false : O == 1 ? true : s->wI == 1;
    const int64_t ldw = oi ? (O > 1 ? s->wO : I) : (I > 1 ? s->wI : O);
    const int term = int(j);
    const bool add = j > 0;
    p.why += fmt::format("{}term {}: {} blocks of {} -> {} ({}, x {}, y {})",
                         j ? "; " : "", j + 1, K, I, O,
                         oi ? "weight [o][i]" : "weight [i][o]",
                         xDirect ? "in place" : "gathered",
                         yDirect ? "in place" : "scattered");

    // Forward: Y_kᵀ (O × n) = op(W) · X_kᵀ.
    Side in = xSide(GemmBuffer::X), out = ySide(GemmBuffer::Y);
    if (!in.direct)
      p.forward.push_back(gather(GemmBuffer::X, GemmBuffer::XS, K, I, s->xK,
                                 s->xI, dIn));
    GemmCall f;
    f.transA = oi, f.m = O, f.n = 0, f.k = I, f.tokens = 1;
    f.a = GemmBuffer::W, f.termA = term, f.lda = ldw, f.strideA = s->wK;
    f.b = in.buffer, f.ldb = in.ld, f.strideB = in.stride;
    f.c = out.buffer, f.ldc = out.ld, f.strideC = out.stride;
    f.batch = K, f.accumulate = out.direct && add;
    p.forward.push_back(gemm(f));
    if (!out.direct)
      p.forward.push_back(scatter(GemmBuffer::Y, GemmBuffer::YS, K, O, s->yK,
                                  s->yO, dOut, add));

    // Backward w.r.t. x: dX_kᵀ (I × n) = op(W)ᵀ · dY_kᵀ.
    Side dy = ySide(GemmBuffer::DY), dx = xSide(GemmBuffer::DX);
    if (!dy.direct)
      p.backwardInput.push_back(gather(GemmBuffer::DY, GemmBuffer::YS, K, O,
                                       s->yK, s->yO, dOut));
    GemmCall bi;
    bi.transA = !oi, bi.m = I, bi.n = 0, bi.k = O, bi.tokens = 1;
    bi.a = GemmBuffer::W, bi.termA = term, bi.lda = ldw, bi.strideA = s->wK;
    bi.b = dy.buffer, bi.ldb = dy.ld, bi.strideB = dy.stride;
    bi.c = dx.buffer, bi.ldc = dx.ld, bi.strideC = dx.stride;
    bi.batch = K, bi.accumulate = dx.direct && add;
    p.backwardInput.push_back(gemm(bi));
    if (!dx.direct)
      p.backwardInput.push_back(scatter(GemmBuffer::DX, GemmBuffer::XS, K, I,
                                        s->xK, s->xI, dIn, add));

    // Weight gradient, summed over tokens: [o][i] stores dW_kᵀ (I × O) =
    // X_kᵀ · dY_k; [i][o] stores dW_k (O × I) = dY_kᵀ · X_k.
    Side xw = xSide(GemmBuffer::X), yw = ySide(GemmBuffer::DY);
    if (!xw.direct)
      p.backwardWeights.push_back(gather(GemmBuffer::X, GemmBuffer::XS, K, I,
                                         s->xK, s->xI, dIn));
    if (!yw.direct)
      p.backwardWeights.push_back(gather(GemmBuffer::DY, GemmBuffer::YS, K, O,
                                         s->yK, s->yO, dOut));
    GemmCall bw;
    const Side &first = oi ? xw : yw, &second = oi ? yw : xw;
    bw.transA = false, bw.transB = true;
    bw.m = oi ? I : O, bw.n = oi ? O : I, bw.k = 0, bw.tokens = 2;
    bw.a = first.buffer, bw.lda = first.ld, bw.strideA = first.stride;
    bw.b = second.buffer, bw.ldb = second.ld, bw.strideB = second.stride;
    bw.c = GemmBuffer::DW, bw.termC = term, bw.ldc = ldw, bw.strideC = s->wK;
    bw.batch = K;
    p.backwardWeights.push_back(gemm(bw));
  }
  if (dOut > outDim)
    p.forward.push_back(fill(GemmBuffer::Y, outDim, dOut));
  if (dIn > inDim)
    p.backwardInput.push_back(fill(GemmBuffer::DX, inDim, dIn));
  return p;
}

} // namespace einstruct
