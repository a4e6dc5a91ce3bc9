#include "LayerGradient.h"
#include "ContractionChain.h"

namespace einstruct {

mlir::FailureOr<LayerGradients>
layerGradients(mlir::OpBuilder &b, mlir::Location loc, LayerOp t, mlir::Value x,
               mlir::ValueRange weights, mlir::Value dy) {
  EinsumTerm term;
  std::string error;
  if (!termOf(t, term, error)) {
    t.emitOpError() << error;
    return mlir::failure();
  }
  LayerGradients out;
  // dx: the same einsum read backwards (x and y swapped, the weights in
  // reverse order), as the CUDA planner's backward role reads it too.
  llvm::SmallVector<mlir::Value> reversed(llvm::reverse(weights));
  out.dx = LayerOp::create(b, loc, x.getType(), dy, reversed,
                           b.getStringAttr(transposedTerm(term).str()),
                           t.getSizes(), t.getDOutAttr(), t.getDInAttr(),
                           nullptr, nullptr, nullptr);
  // dWi: contract x and dy over the batch with every other weight.
  char n = batchLetter(term);
  mlir::Value xs = collapseBatch(b, loc, x);
  xs = fitFeatures(b, loc, xs, term.inDim());
  xs = splitFeatures(b, loc, xs, term.input, term.sizes);
  mlir::Value dys = collapseBatch(b, loc, dy);
  dys = fitFeatures(b, loc, dys, term.outDim());
  dys = splitFeatures(b, loc, dys, term.output, term.sizes);
  std::map<char, int64_t> sizes = term.sizes;
  sizes[n] = mlir::cast<mlir::RankedTensorType>(xs.getType()).getDimSize(0);
  std::string nx = std::string(1, n) + term.input;
  std::string ny = std::string(1, n) + term.output;
  for (size_t i = 0; i < term.weights.size(); ++i) {
    // Start from x or from dy, whichever chain is cheaper, and order the
    // other operands by exact cost (at a nominal batch of 1024).
    ChainOperand start[2] = {{xs, nx}, {dys, ny}};
    int bestStart = -1;
    int64_t bestFlops = 0;
    std::vector<ChainOperand> bestOrder;
    for (int s = 0; s < 2; ++s) {
      EinsumTerm g;
      g.input = start[s].letters;
      std::vector<ChainOperand> ops = {start[1 - s]};
      g.weights.push_back(start[1 - s].letters);
      for (size_t j = 0; j < term.weights.size(); ++j)
        if (j != i) {
          g.weights.push_back(term.weights[j]);
          ops.push_back({weights[j], term.weights[j]});
        }
      g.output = term.weights[i];
      g.sizes = term.sizes;
      g.sizes[n] = 1024;
      auto cost = termCost(g);
      if (!cost) {
        t.emitOpError() << cost.error();
        return mlir::failure();
      }
      if (bestStart >= 0 && cost->flops >= bestFlops)
        continue;
      bestStart = s;
      bestFlops = cost->flops;
      bestOrder.clear();
      for (int k : cost->order)
        bestOrder.push_back(ops[size_t(k)]);
    }
    out.dw.push_back(contractChain(b, loc, start[bestStart], bestOrder,
                                   term.weights[i], sizes));
  }
  return out;
}

} // namespace einstruct
