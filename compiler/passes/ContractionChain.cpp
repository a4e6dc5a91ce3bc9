#include "ContractionChain.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <algorithm>

namespace einstruct {

using mlir::OpFoldResult;
using mlir::Value;

char batchLetter(const EinsumTerm &t) {
  for (char c : std::string("nNbBzZ"))
    if (!t.sizes.count(c))
      return c;
  for (char c = 'a'; c <= 'z'; ++c)
    if (!t.sizes.count(c))
      return c;
  return 0;
}

static OpFoldResult dimOf(mlir::OpBuilder &b, mlir::Location loc, Value v,
                          int64_t k) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  if (type.isDynamicDim(k))
    return mlir::tensor::DimOp::create(b, loc, v, k).getResult();
  return b.getIndexAttr(type.getDimSize(k));
}

Value collapseBatch(mlir::OpBuilder &b, mlir::Location loc, Value v) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  int64_t rank = type.getRank();
  if (rank == 2)
    return v;
  llvm::SmallVector<mlir::ReassociationIndices> r(2);
  for (int64_t k = 0; k < rank - 1; ++k)
    r[0].push_back(k);
  r[1].push_back(rank - 1);
  return mlir::tensor::CollapseShapeOp::create(b, loc, v, r);
}

Value fitFeatures(mlir::OpBuilder &b, mlir::Location loc, Value v,
                  int64_t want) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  int64_t have = type.getDimSize(1);
  if (have == want)
    return v;
  auto resultType = mlir::RankedTensorType::get({type.getDimSize(0), want},
                                                type.getElementType());
  if (want > have) {
    Value zero = mlir::arith::ConstantOp::create(
        b, loc, b.getZeroAttr(type.getElementType()));
    llvm::SmallVector<OpFoldResult> low = {b.getIndexAttr(0),
                                           b.getIndexAttr(0)};
    llvm::SmallVector<OpFoldResult> high = {b.getIndexAttr(0),
                                            b.getIndexAttr(want - have)};
    return mlir::tensor::PadOp::create(b, loc, resultType, v, low, high, zero);
  }
  return mlir::tensor::ExtractSliceOp::create(
      b, loc, resultType, v,
      llvm::ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
      llvm::ArrayRef<OpFoldResult>{dimOf(b, loc, v, 0), b.getIndexAttr(want)},
      llvm::ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
}

static llvm::SmallVector<mlir::ReassociationIndices> splitMap(size_t count) {
  llvm::SmallVector<mlir::ReassociationIndices> r(2);
  r[0].push_back(0);
  for (size_t k = 0; k < count; ++k)
    r[1].push_back(int64_t(k + 1));
  return r;
}

Value splitFeatures(mlir::OpBuilder &b, mlir::Location loc, Value v,
                    const std::string &letters,
                    const std::map<char, int64_t> &sizes) {
  if (letters.size() == 1)
    return v;
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  llvm::SmallVector<int64_t> shape = {type.getDimSize(0)};
  for (char c : letters)
    shape.push_back(sizes.at(c));
  return mlir::tensor::ExpandShapeOp::create(
      b, loc, mlir::RankedTensorType::get(shape, type.getElementType()), v,
      splitMap(letters.size()));
}

Value mergeFeatures(mlir::OpBuilder &b, mlir::Location loc, Value v) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  if (type.getRank() == 2)
    return v;
  return mlir::tensor::CollapseShapeOp::create(
      b, loc, v, splitMap(size_t(type.getRank() - 1)));
}

Value permuted(mlir::OpBuilder &b, mlir::Location loc, Value v,
               const std::string &letters, const std::string &to) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  llvm::SmallVector<int64_t> perm, shape;
  llvm::SmallVector<Value> dynSizes;
  for (char c : to) {
    int64_t k = int64_t(letters.find(c));
    perm.push_back(k);
    shape.push_back(type.getDimSize(k));
    if (type.isDynamicDim(k))
      dynSizes.push_back(mlir::tensor::DimOp::create(b, loc, v, k));
  }
  Value init = mlir::tensor::EmptyOp::create(b, loc, shape,
                                             type.getElementType(), dynSizes);
  return mlir::linalg::TransposeOp::create(b, loc, v, init, perm)->getResult(0);
}

Value contractChain(mlir::OpBuilder &b, mlir::Location loc, ChainOperand first,
                    const std::vector<ChainOperand> &rest,
                    const std::string &out,
                    const std::map<char, int64_t> &sizes) {
  auto elt =
      mlir::cast<mlir::RankedTensorType>(first.value.getType()).getElementType();
  ChainOperand cur = first;
  for (size_t k = 0; k < rest.size(); ++k) {
    const ChainOperand &w = rest[k];
    std::string res;
    if (k + 1 == rest.size()) {
      res = out;
    } else {
      auto needed = [&](char c) {
        if (out.find(c) != std::string::npos)
          return true;
        for (size_t j = k + 1; j < rest.size(); ++j)
          if (rest[j].letters.find(c) != std::string::npos)
            return true;
        return false;
      };
      for (char c : cur.letters + w.letters)
        if (needed(c) && res.find(c) == std::string::npos)
          res += c;
      // The innermost index is the vectorised one. It must be contiguous in
      // the batch-side operand (absent from it, or its last index), should
      // be a multiple of the vector width, and large.
      auto score = [&](char c) -> int64_t {
        int64_t s = sizes.at(c);
        if (mlir::ShapedType::isDynamic(s))
          return -1;
        size_t at = cur.letters.find(c);
        bool contiguous =
            at == std::string::npos || at + 1 == cur.letters.size();
        return (contiguous ? int64_t(1) << 41 : 0) +
               (s % 8 == 0 ? int64_t(1) << 40 : 0) + s;
      };
      auto best = std::max_element(res.begin(), res.end(), [&](char x, char y) {
        return score(x) < score(y);
      });
      std::rotate(best, best + 1, res.end());
    }
    llvm::SmallVector<int64_t> shape;
    for (char c : res)
      shape.push_back(sizes.at(c));
    Value v = ContractOp::create(
        b, loc, mlir::RankedTensorType::get(shape, elt), cur.value, w.value,
        b.getStringAttr(cur.letters + "," + w.letters + "->" + res));
    cur = {v, res};
  }
  return cur.value;
}

} // namespace einstruct
