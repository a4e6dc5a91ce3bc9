#include "EmitMixer.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

#include <map>

namespace einstruct {

namespace {

using mlir::Value;
constexpr int64_t kDyn = mlir::ShapedType::kDynamic;

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

} // namespace

void emitSsd(mlir::ModuleOp module, const SsdShape &s, const std::string &name) {
  mlir::OpBuilder b(module.getContext());
  mlir::Location loc = b.getUnknownLoc();
  const int64_t H = s.heads, P = s.headDim, N = s.state, Q = s.chunk,
                L = s.length, T = s.length / s.chunk;
  b.setInsertionPointToEnd(module.getBody());
  auto xType = tensor(b, {kDyn, L, H, P});
  auto fn = mlir::func::FuncOp::create(
      b, loc, name,
      b.getFunctionType({xType, tensor(b, {kDyn, L, H}),
                         tensor(b, {kDyn, L, N}), tensor(b, {kDyn, L, N})},
                        {xType}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  Value batch = mlir::tensor::DimOp::create(b, loc, fn.getArgument(0), 0);
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
  Value x = chunked(fn.getArgument(0), {kDyn, T, Q, H, P});
  Value a = chunked(fn.getArgument(1), {kDyn, T, Q, H});
  Value B = chunked(fn.getArgument(2), {kDyn, T, Q, N});
  Value C = chunked(fn.getArgument(3), {kDyn, T, Q, N});
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
  y = mlir::tensor::CollapseShapeOp::create(
      b, loc, xType, y,
      llvm::ArrayRef<mlir::ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
  mlir::func::ReturnOp::create(b, loc, y);
}

} // namespace einstruct
