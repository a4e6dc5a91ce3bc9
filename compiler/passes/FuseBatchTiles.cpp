// --einstruct-fuse-batch-tiles: a chain of batched linalg ops runs over
// tiles of batch rows, its intermediates tile-sized (see Passes.td).
#include "Passes.h"

#include "mlir/Dialect/Linalg/Transforms/TilingInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace einstruct {
#define GEN_PASS_DEF_FUSEBATCHTILES
#include "Passes.h.inc"

namespace {

// Whether the op's tiles are slices of its operands: not so for a map like
// einstruct.reverse's n − 1 − i, whose tile MLIR would size wrongly.
bool tileable(mlir::Operation *op) {
  auto linalgOp = mlir::dyn_cast<mlir::linalg::LinalgOp>(op);
  return !linalgOp || linalgOp.hasOnlyProjectedPermutations();
}

// The loop of `op` that runs over its result's leading index, when that
// index is dynamic (the batch) and the loop parallel.
std::optional<unsigned> batchLoop(mlir::linalg::LinalgOp op) {
  if (op->getNumResults() != 1 || op.getNumDpsInits() != 1 || !tileable(op))
    return std::nullopt;
  auto type = mlir::dyn_cast<mlir::RankedTensorType>(op->getResult(0).getType());
  if (!type || type.getRank() == 0 || !type.isDynamicDim(0))
    return std::nullopt;
  mlir::AffineMap map = op.getIndexingMapMatchingResult(op->getResult(0));
  auto d = mlir::dyn_cast<mlir::AffineDimExpr>(map.getResult(0));
  if (!d || op.getIteratorTypesArray()[d.getPosition()] !=
                mlir::utils::IteratorType::parallel)
    return std::nullopt;
  return d.getPosition();
}

// A weight gradient's loop over the batch: a reduction loop indexing a
// dynamic dim of an input, when the result itself is static.
std::optional<unsigned> batchReduction(mlir::linalg::LinalgOp op) {
  if (op->getNumResults() != 1 || op.getNumDpsInits() != 1 || !tileable(op))
    return std::nullopt;
  auto type = mlir::dyn_cast<mlir::RankedTensorType>(op->getResult(0).getType());
  if (!type || !type.hasStaticShape())
    return std::nullopt;
  auto iters = op.getIteratorTypesArray();
  for (mlir::OpOperand *in : op.getDpsInputOperands()) {
    auto t = mlir::dyn_cast<mlir::RankedTensorType>(in->get().getType());
    if (!t)
      continue;
    mlir::AffineMap map = op.getMatchingIndexingMap(in);
    for (int64_t i = 0; i < t.getRank(); ++i) {
      auto d = mlir::dyn_cast<mlir::AffineDimExpr>(map.getResult(unsigned(i)));
      if (t.isDynamicDim(i) && d &&
          iters[d.getPosition()] == mlir::utils::IteratorType::reduction)
        return d.getPosition();
    }
  }
  return std::nullopt;
}

struct FuseBatchTilesPass : impl::FuseBatchTilesBase<FuseBatchTilesPass> {
  using FuseBatchTilesBase::FuseBatchTilesBase;

  void getDependentDialects(mlir::DialectRegistry &registry) const override {
    FuseBatchTilesBase::getDependentDialects(registry);
    mlir::linalg::registerTilingInterfaceExternalModels(registry);
  }

  void runOnOperation() override {
    llvm::SmallVector<mlir::linalg::LinalgOp> ops;
    getOperation().walk([&](mlir::linalg::LinalgOp op) {
      if (batchLoop(op) || batchReduction(op))
        ops.push_back(op);
    });
    // Last op first: each becomes the consumer of a tile loop unless an
    // earlier loop already took it in.
    llvm::DenseSet<mlir::Operation *> fused;
    mlir::IRRewriter rewriter(&getContext());
    for (mlir::linalg::LinalgOp op : llvm::reverse(ops)) {
      if (fused.contains(op))
        continue;
      if (mlir::failed(tile(rewriter, op, fused)))
        return signalPassFailure();
    }
    // A tile's slice of a whole-batch tensor.empty becomes a tile-sized
    // tensor.empty: the intermediates are allocated one tile at a time.
    mlir::RewritePatternSet patterns(&getContext());
    mlir::tensor::populateFoldTensorEmptyPatterns(patterns);
    if (mlir::failed(
            mlir::applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }

  mlir::LogicalResult tile(mlir::IRRewriter &rewriter,
                           mlir::linalg::LinalgOp op,
                           llvm::DenseSet<mlir::Operation *> &fused) {
    llvm::SmallVector<mlir::OpFoldResult> sizes(op.getNumLoops(),
                                                rewriter.getIndexAttr(0));
    // A weight gradient sums over the batch: its tiles accumulate into the
    // result carried by the loop, so its zero fill stays outside.
    std::optional<unsigned> summed = batchReduction(op);
    sizes[summed ? *summed : *batchLoop(op)] =
        rewriter.getIndexAttr(summed ? summedRows : rows);
    mlir::scf::SCFTilingOptions tiling;
    tiling.setTileSizes(sizes).setLoopType(
        mlir::scf::SCFTilingOptions::LoopType::ForOp);
    // Ops that this loop replaces: a producer joins when it depends on the
    // batch and nothing outside the loop reads it (else it would run twice).
    llvm::DenseSet<mlir::Operation *> inLoop = {op};
    mlir::scf::SCFTileAndFuseOptions options;
    options.setTilingOptions(tiling);
    options.setFusionControlFn(
        [&](mlir::tensor::ExtractSliceOp slice, mlir::OpResult producer,
            bool destination) -> std::optional<
                      mlir::scf::SCFTileAndFuseOptions::ControlFnResult> {
          auto type = mlir::dyn_cast<mlir::RankedTensorType>(producer.getType());
          if (!type || type.hasStaticShape() || (summed && destination) ||
              !tileable(producer.getOwner()))
            return std::nullopt;
          // Size queries are answered from the producer's init below; a
          // destination is also the loop's initial value.
          for (mlir::Operation *user : producer.getUsers())
            if (user != slice && !inLoop.contains(user) &&
                !mlir::isa<mlir::tensor::DimOp>(user) &&
                !(destination && mlir::isa<mlir::scf::ForOp>(user)))
              return std::nullopt;
          inLoop.insert(producer.getOwner());
          return mlir::scf::SCFTileAndFuseOptions::ControlFnResult{};
        });
    rewriter.setInsertionPoint(op);
    auto result = mlir::scf::tileConsumerAndFuseProducersUsingSCF(
        rewriter, mlir::cast<mlir::TilingInterface>(op.getOperation()),
        options);
    if (mlir::failed(result))
      return op.emitOpError("could not be tiled along the batch");
    rewriter.replaceAllUsesWith(op->getResult(0),
                                result->replacements.lookup(op->getResult(0)));
    rewriter.eraseOp(op);
    // Producers in fusion order: each one's readers went before it.
    for (mlir::Operation *p : result->fusedProducers) {
      fused.insert(p);
      auto linalgOp = mlir::dyn_cast<mlir::linalg::LinalgOp>(p);
      if (!linalgOp)
        continue;
      for (mlir::Operation *user : llvm::make_early_inc_range(p->getUsers()))
        if (auto dim = mlir::dyn_cast<mlir::tensor::DimOp>(user)) {
          rewriter.setInsertionPoint(dim);
          rewriter.replaceOpWithNewOp<mlir::tensor::DimOp>(
              dim, linalgOp.getDpsInits()[0], dim.getIndex());
        }
      if (p->use_empty())
        rewriter.eraseOp(p);
    }
    return mlir::success();
  }
};

} // namespace
} // namespace einstruct
