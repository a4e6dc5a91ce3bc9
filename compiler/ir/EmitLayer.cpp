#include "EmitLayer.h"
#include "dialects/EinstructDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

namespace einstruct {

void loadDialects(mlir::MLIRContext &ctx) {
  ctx.loadDialect<EinstructDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
}

mlir::OwningOpRef<mlir::ModuleOp>
layerModule(mlir::MLIRContext &ctx, const std::vector<Layer> &layers,
            const std::vector<std::string> &names) {
  loadDialects(ctx);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx));
  for (size_t k = 0; k < layers.size(); ++k) {
    std::string fn = k < names.size()     ? names[k]
                     : layers.size() == 1 ? "layer"
                                          : "layer" + std::to_string(k);
    if (layers[k].experts)
      emitMoeLayer(*module, layers[k], fn);
    else
      emitLayer(*module, layers[k], fn);
  }
  if (mlir::failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

void emitLayer(mlir::ModuleOp module, const Layer &layer,
               const std::string &name) {
  mlir::MLIRContext *ctx = module.getContext();
  mlir::OpBuilder b(ctx);
  mlir::Location loc = b.getUnknownLoc();
  mlir::Type f32 = b.getF32Type();
  auto x = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, layer.dIn},
                                       f32);
  auto y = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, layer.dOut},
                                       f32);
  llvm::SmallVector<mlir::Type> args{x};
  for (const auto &shape : weightShapes(layer))
    args.push_back(mlir::RankedTensorType::get(shape, f32));
  b.setInsertionPointToEnd(module.getBody());
  auto fn = mlir::func::FuncOp::create(b, loc, name,
                                         b.getFunctionType(args, {y}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  mlir::Value sum;
  unsigned arg = 1;
  for (const auto &t : layer.terms) {
    llvm::SmallVector<mlir::Value> weights;
    for (size_t k = 0; k < t.weights.size(); ++k)
      weights.push_back(fn.getArgument(arg++));
    llvm::SmallVector<mlir::NamedAttribute> sizes;
    for (auto [c, n] : t.sizes)
      sizes.push_back(b.getNamedAttr(std::string(1, c),
                                     b.getI64IntegerAttr(n)));
    mlir::DenseF64ArrayAttr theta;
    if (layer.theta)
      theta = b.getDenseF64ArrayAttr(layer.theta->v);
    auto op = LayerOp::create(
        b, loc, y, fn.getArgument(0), weights, b.getStringAttr(t.str()),
        b.getDictionaryAttr(sizes), b.getI64IntegerAttr(layer.dIn),
        b.getI64IntegerAttr(layer.dOut), theta,
        layer.experts ? b.getI64IntegerAttr(layer.experts) : nullptr,
        layer.experts ? b.getI64IntegerAttr(layer.topK) : nullptr);
    sum = sum ? mlir::arith::AddFOp::create(b, loc, sum, op).getResult()
              : op.getResult();
  }
  mlir::func::ReturnOp::create(b, loc, sum);
}

mlir::Value routerLogits(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                         mlir::Value router, int64_t dIn, int64_t experts) {
  auto sizes = b.getDictionaryAttr(
      {b.getNamedAttr("i", b.getI64IntegerAttr(dIn)),
       b.getNamedAttr("o", b.getI64IntegerAttr(experts))});
  auto xType = mlir::cast<mlir::RankedTensorType>(x.getType());
  auto type = mlir::RankedTensorType::get({xType.getDimSize(0), experts},
                                          xType.getElementType());
  return LayerOp::create(b, loc, type, x, mlir::ValueRange{router},
                         b.getStringAttr("i,io->o"), sizes,
                         b.getI64IntegerAttr(dIn),
                         b.getI64IntegerAttr(experts), nullptr, nullptr,
                         nullptr);
}

void emitMoeLayer(mlir::ModuleOp module, const Layer &layer,
                  const std::string &name, bool withLogits) {
  mlir::MLIRContext *ctx = module.getContext();
  mlir::OpBuilder b(ctx);
  mlir::Location loc = b.getUnknownLoc();
  mlir::Type f32 = b.getF32Type();
  const EinsumTerm &t = layer.terms[0];
  auto x = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, layer.dIn},
                                       f32);
  auto y = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, layer.dOut},
                                       f32);
  auto aux = mlir::RankedTensorType::get({}, f32);
  llvm::SmallVector<mlir::Type> results{y, aux};
  if (withLogits)
    results.push_back(mlir::RankedTensorType::get(
        {mlir::ShapedType::kDynamic, layer.experts}, f32));
  llvm::SmallVector<mlir::Type> args{
      x, mlir::RankedTensorType::get({layer.dIn, layer.experts}, f32)};
  for (const auto &w : t.weights) // every letter, the rank letter included
    args.push_back(mlir::RankedTensorType::get(t.shape(w), f32));
  b.setInsertionPointToEnd(module.getBody());
  auto fn = mlir::func::FuncOp::create(b, loc, name,
                                         b.getFunctionType(args, results));
  b.setInsertionPointToStart(fn.addEntryBlock());
  llvm::SmallVector<mlir::NamedAttribute> sizes;
  for (auto [c, n] : t.sizes)
    sizes.push_back(b.getNamedAttr(std::string(1, c), b.getI64IntegerAttr(n)));
  auto op = MoeLayerOp::create(
      b, loc, mlir::TypeRange{y, aux}, fn.getArgument(0), fn.getArgument(1),
      mlir::ValueRange{fn.getArgument(2), fn.getArgument(3)},
      b.getStringAttr(t.str()), b.getDictionaryAttr(sizes),
      b.getI64IntegerAttr(layer.dIn), b.getI64IntegerAttr(layer.dOut),
      b.getI64IntegerAttr(layer.experts), b.getI64IntegerAttr(layer.topK));
  llvm::SmallVector<mlir::Value> returned(op.getResults());
  if (withLogits)
    returned.push_back(routerLogits(b, loc, fn.getArgument(0),
                                    fn.getArgument(1), layer.dIn,
                                    layer.experts));
  mlir::func::ReturnOp::create(b, loc, returned);
}

} // namespace einstruct
