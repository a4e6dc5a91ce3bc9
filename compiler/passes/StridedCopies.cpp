// --einstruct-strided-copies: memref.copy between non-contiguous views as
// loops LLVM vectorizes, not the runtime's element-at-a-time memrefCopy.
#include "Passes.h"

#include "mlir/Dialect/Linalg/Utils/Utils.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"

namespace einstruct {
#define GEN_PASS_DEF_STRIDEDCOPIES
#include "Passes.h.inc"

namespace {

// What --finalize-memref-to-llvm turns into one memcpy.
bool contiguous(mlir::Type type) {
  auto memref = mlir::cast<mlir::MemRefType>(type);
  return memref.getLayout().isIdentity() ||
         mlir::memref::isStaticShapeAndContiguousRowMajor(memref);
}

struct StridedCopiesPass : impl::StridedCopiesBase<StridedCopiesPass> {
  using StridedCopiesBase::StridedCopiesBase;

  void runOnOperation() override {
    llvm::SmallVector<mlir::memref::CopyOp> todo;
    getOperation()->walk([&](mlir::memref::CopyOp copy) {
      if (mlir::isa<mlir::MemRefType>(copy.getSource().getType()) &&
          mlir::isa<mlir::MemRefType>(copy.getTarget().getType()) &&
          !(contiguous(copy.getSource().getType()) &&
            contiguous(copy.getTarget().getType())))
        todo.push_back(copy);
    });
    for (mlir::memref::CopyOp copy : todo) {
      mlir::OpBuilder b(copy);
      mlir::linalg::makeMemRefCopyOp(b, copy.getLoc(), copy.getSource(),
                                     copy.getTarget());
      copy.erase();
    }
  }
};

} // namespace
} // namespace einstruct
