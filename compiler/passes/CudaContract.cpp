#include "CudaContract.h"
#include "ContractionChain.h"
#include "search/Einsum.h"

#include "mlir/IR/Builders.h"

#include <algorithm>
#include <limits>

namespace einstruct {

namespace {

bool has(const std::string &s, char c) {
  return s.find(c) != std::string::npos;
}

// The letters of `from` that `set` has, in from's order.
std::string inOrder(const std::string &from, const std::string &set) {
  std::string out;
  for (char c : from)
    if (has(set, c))
      out += c;
  return out;
}

// A GEMM pays off when each batch entry sums at least this many terms and
// its matrix has at least this many entries (a dynamic extent counted as
// 1); below, the direct kernel's one thread per element does as well
// without transposes (M2's 2×2 complex products, the SSD's broadcasts).
constexpr int64_t kMinGemmSum = 16;
constexpr int64_t kMinGemmEntries = 256;

int64_t staticExtent(mlir::RankedTensorType t, const std::string &letters,
                     const std::string &of) {
  int64_t n = 1;
  for (size_t d = 0; d < letters.size(); ++d)
    if (has(of, letters[d]) && !t.isDynamicDim(int64_t(d)))
      n *= t.getDimSize(int64_t(d));
  return n;
}

// Elements of `t`, a dynamic extent counted as 64 (sequences in a call).
double elements(mlir::RankedTensorType t) {
  double n = 1;
  for (int64_t d : t.getShape())
    n *= mlir::ShapedType::isDynamic(d) ? 64.0 : double(d);
  return n;
}

// Whether `s` is g1·g2·g3 or g1·g3·g2.
bool grouped(const std::string &s, const std::string &g1, const std::string &g2,
             const std::string &g3) {
  return s == g1 + g2 + g3 || s == g1 + g3 + g2;
}

// The cheapest layouts (fewest elements transposed) that make one GEMM of
// "lhs,rhs->out": the operands' and the computed result's letters.
struct Layouts {
  std::string lhs, rhs, out;
};
Layouts cheapestLayouts(const ContractRoles &r, const std::string &lhs,
                        const std::string &rhs, const std::string &out,
                        double lhsSize, double rhsSize, double outSize) {
  auto options = [](std::initializer_list<std::string> list) {
    std::vector<std::string> v;
    for (const auto &s : list)
      if (std::find(v.begin(), v.end(), s) == v.end())
        v.push_back(s);
    return v;
  };
  const auto Bs = options(
      {inOrder(out, r.batch), inOrder(lhs, r.batch), inOrder(rhs, r.batch)});
  const auto Ms = options({inOrder(out, r.m), inOrder(lhs, r.m)});
  const auto Ns = options({inOrder(out, r.n), inOrder(rhs, r.n)});
  const auto Ks = options({inOrder(lhs, r.k), inOrder(rhs, r.k)});
  Layouts best;
  double bestCost = std::numeric_limits<double>::infinity();
  for (const auto &B : Bs)
    for (const auto &M : Ms)
      for (const auto &N : Ns)
        for (const auto &K : Ks)
          for (bool mFirst : {true, false}) {
            Layouts l;
            double cost = 0;
            l.lhs = grouped(lhs, B, M, K) ? lhs : B + M + K;
            l.rhs = grouped(rhs, B, K, N) ? rhs : B + K + N;
            l.out = mFirst ? B + M + N : B + N + M;
            cost += (l.lhs != lhs) * lhsSize + (l.rhs != rhs) * rhsSize +
                    (l.out != out) * outSize;
            if (cost < bestCost) {
              bestCost = cost;
              best = l;
            }
          }
  return best;
}

} // namespace

Result<ContractRoles> contractRoles(const std::string &lhs,
                                    const std::string &rhs,
                                    const std::string &out) {
  ContractRoles r{lhs, rhs, out, "", "", "", ""};
  for (const std::string *s : {&out, &lhs, &rhs})
    for (char c : *s) {
      const bool l = has(lhs, c), w = has(rhs, c), o = has(out, c);
      std::string &role = l && w && o ? r.batch
                          : l && o    ? r.m
                          : w && o    ? r.n
                          : l && w    ? r.k
                                      : r.batch;
      if (l + w + o < 2)
        return Error{
            std::string("letter '") + c + "' is in " +
            (l   ? "lhs"
             : w ? "rhs"
                 : "the result") +
            " alone: a sum over one operand or a broadcast result, which "
            "the CUDA contraction kernels do not take"};
      if (!has(role, c))
        role += c;
    }
  return r;
}

mlir::FailureOr<ContractRoles> contractRoles(ContractOp op) {
  auto t = parseEinsumLetters(op.getSpec().str());
  if (!t)
    return op.emitOpError() << t.error();
  auto roles = contractRoles(t->input, t->weights[0], t->output);
  if (!roles)
    return op.emitOpError() << roles.error();
  return *roles;
}

std::optional<GemmForm> gemmForm(const std::string &lhs, const std::string &rhs,
                                 const std::string &out) {
  auto roles = contractRoles(lhs, rhs, out);
  if (!roles)
    return std::nullopt;
  const ContractRoles &r = *roles;
  for (bool xFromLhs : {true, false}) {
    GemmForm f;
    f.xFromLhs = xFromLhs;
    f.batch = r.batch; // out's order
    f.x = xFromLhs ? r.m : r.n;
    f.y = xFromLhs ? r.n : r.m;
    if (out != f.batch + f.x + f.y)
      continue;
    const std::string &p = xFromLhs ? lhs : rhs, &q = xFromLhs ? rhs : lhs;
    if (p.compare(0, f.batch.size(), f.batch) != 0)
      continue;
    f.k = inOrder(p, r.k);
    f.pKFirst = p != f.batch + f.x + f.k;
    if (f.pKFirst && p != f.batch + f.k + f.x)
      continue;
    f.qYFirst = q != f.batch + f.k + f.y;
    if (f.qYFirst && q != f.batch + f.y + f.k)
      continue;
    return f;
  }
  return std::nullopt;
}

mlir::LogicalResult checkCudaKernel(ContractOp op, llvm::StringRef kernel) {
  if (kernel == kDirectKernel)
    return mlir::success();
  if (kernel != kCublasKernel)
    return op.emitOpError()
           << kCudaKernelAttr << " is '" << kernel << "': expected '"
           << kCublasKernel << "' or '" << kDirectKernel << "'";
  auto roles = contractRoles(op);
  if (mlir::failed(roles))
    return mlir::failure();
  if (roles->k.empty())
    return op.emitOpError() << "cuBLAS needs a summed letter";
  if (!gemmForm(roles->lhs, roles->rhs, roles->out))
    return op.emitOpError()
           << "'" << op.getSpec() << "' is not laid out for one strided "
           << "batched GEMM (remove " << kCudaKernelAttr << " to plan again)";
  return mlir::success();
}

mlir::LogicalResult planCudaContract(ContractOp op) {
  auto roles = contractRoles(op);
  if (mlir::failed(roles))
    return mlir::failure();
  const std::string &lhs = roles->lhs, &rhs = roles->rhs, &out = roles->out;
  auto type = [](mlir::Value v) {
    return mlir::cast<mlir::RankedTensorType>(v.getType());
  };
  if (!type(op.getResult()).getElementType().isF32())
    return op.emitOpError() << "the CUDA contraction kernels take f32 only";
  mlir::OpBuilder b(op);
  // A plan already there (edited or not) is kept when it can run.
  if (auto kept = op->getAttrOfType<mlir::StringAttr>(kCudaKernelAttr))
    return checkCudaKernel(op, kept.getValue());
  const auto lt = type(op.getLhs()), rt = type(op.getRhs());
  const int64_t sum = staticExtent(lt, lhs, roles->k);
  const int64_t entries =
      staticExtent(lt, lhs, roles->m) * staticExtent(rt, rhs, roles->n);
  if (sum < kMinGemmSum || entries < kMinGemmEntries) {
    op->setAttr(kCudaKernelAttr, b.getStringAttr(kDirectKernel));
    return mlir::success();
  }
  if (gemmForm(lhs, rhs, out)) {
    op->setAttr(kCudaKernelAttr, b.getStringAttr(kCublasKernel));
    return mlir::success();
  }
  Layouts l = cheapestLayouts(*roles, lhs, rhs, out, elements(lt), elements(rt),
                              elements(type(op.getResult())));
  mlir::Location loc = op.getLoc();
  mlir::Value a = op.getLhs(), w = op.getRhs();
  if (l.lhs != lhs)
    a = permuted(b, loc, a, lhs, l.lhs);
  if (l.rhs != rhs)
    w = permuted(b, loc, w, rhs, l.rhs);
  llvm::SmallVector<int64_t> shape;
  const auto ot = type(op.getResult());
  for (char c : l.out)
    shape.push_back(ot.getDimSize(int64_t(out.find(c))));
  auto computed = ContractOp::create(
      b, loc, mlir::RankedTensorType::get(shape, ot.getElementType()), a, w,
      b.getStringAttr(l.lhs + "," + l.rhs + "->" + l.out));
  computed->setAttr(kCudaKernelAttr, b.getStringAttr(kCublasKernel));
  mlir::Value result = computed.getResult();
  if (l.out != out)
    result = permuted(b, loc, result, l.out, out);
  op.getResult().replaceAllUsesWith(result);
  op.erase();
  return mlir::success();
}

} // namespace einstruct
