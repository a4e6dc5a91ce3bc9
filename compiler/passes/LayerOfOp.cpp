#include "LayerOfOp.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

namespace einstruct {
namespace {

Result<Layer> layerOfTerm(llvm::StringRef spec, mlir::DictionaryAttr sizes,
                          int64_t dIn, int64_t dOut,
                          std::optional<Theta> theta, int64_t experts,
                          int64_t topK) {
  EinsumTerm term;
  std::string error;
  if (!termOf(spec, sizes, term, error))
    return Error{error};
  auto layer = layerFromTerms({term}, dIn, dOut);
  if (!layer)
    return layer;
  layer->theta = theta;
  if (experts && layer->terms.size() == 1 && classify(layer->terms[0])) {
    layer->experts = experts;
    layer->topK = topK;
    layer->name = "btt-moe";
  }
  return layer;
}

} // namespace

Result<Layer> layerOfOp(LayerOp op) {
  std::optional<Theta> theta;
  if (auto th = op.getTheta()) {
    Theta t;
    for (int c = 0; c < kNumClasses; ++c)
      t[c] = (*th)[c];
    theta = t;
  }
  int64_t experts = op.getExperts() ? op.getExpertsAttr().getInt() : 0;
  int64_t topK = op.getTopK() ? op.getTopKAttr().getInt() : 0;
  return layerOfTerm(op.getSpec(), op.getSizes(), op.getDInAttr().getInt(),
                     op.getDOutAttr().getInt(), theta, experts, topK);
}

Result<Layer> layerOfOp(MoeLayerOp op) {
  return layerOfTerm(op.getSpec(), op.getSizes(), op.getDInAttr().getInt(),
                     op.getDOutAttr().getInt(), std::nullopt,
                     op.getExpertsAttr().getInt(), op.getTopKAttr().getInt());
}

Result<Layer> layerOfOp(MoeLayerGradOp op) {
  return layerOfTerm(op.getSpec(), op.getSizes(), op.getDInAttr().getInt(),
                     op.getDOutAttr().getInt(), std::nullopt,
                     op.getExpertsAttr().getInt(), op.getTopKAttr().getInt());
}

std::optional<Result<Layer>> layerOfFunction(mlir::func::FuncOp f) {
  std::vector<Layer> terms; // one per einstruct.layer
  std::optional<Result<Layer>> moe;
  for (mlir::Operation &op : f.getBody().getOps()) {
    if (auto l = mlir::dyn_cast<LayerOp>(op)) {
      auto one = layerOfOp(l);
      if (!one)
        return Result<Layer>(Error{one.error()});
      terms.push_back(*one);
    } else if (auto m = mlir::dyn_cast<MoeLayerOp>(op)) {
      moe = layerOfOp(m);
    } else if (!mlir::isa<mlir::arith::AddFOp, mlir::func::ReturnOp>(op)) {
      return std::nullopt;
    }
  }
  if (moe)
    return terms.empty() ? moe : std::nullopt;
  if (terms.size() <= 1) // one op keeps its θ and experts
    return terms.empty() ? std::nullopt
                         : std::optional<Result<Layer>>(terms[0]);
  std::vector<EinsumTerm> sum;
  for (const Layer &t : terms)
    sum.insert(sum.end(), t.terms.begin(), t.terms.end());
  return layerFromTerms(sum, terms[0].dIn, terms[0].dOut);
}

} // namespace einstruct
