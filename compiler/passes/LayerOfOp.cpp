#include "LayerOfOp.h"

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

} // namespace einstruct
