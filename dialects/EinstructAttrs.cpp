// The dialect's attributes (EinstructAttrs.td): storage, printer, parser,
// verifier. Their storage allocates from MLIR's uniquer (LLVM's
// BumpPtrAllocator), so under ASan this file is built uninstrumented: an
// instrumented copy of the allocator's slow path would poison slabs that the
// packaged, uninstrumented MLIR libraries then use (dialects/CMakeLists.txt).
#include "EinstructDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;

#define GET_ATTRDEF_CLASSES
#include "EinstructAttrs.cpp.inc"

void einstruct::EinstructDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "EinstructAttrs.cpp.inc"
      >();
}

LogicalResult einstruct::CudaPlanAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, StringRef kernel,
    StringRef arch, StringRef dtype, int64_t paddedIn, int64_t paddedOut,
    DenseI64ArrayAttr forward, DenseI64ArrayAttr backwardInput,
    DenseI64ArrayAttr hopperForward, DenseI64ArrayAttr hopperBackwardInput,
    bool tmaGrads) {
  if (kernel != "fused_two_stage" && kernel != "grouped_moe" &&
      kernel != "cublas")
    return emitError() << "kernel: unknown '" << kernel
                       << "' (known: fused_two_stage, grouped_moe, cublas)";
  if (arch != "sm_80" && arch != "sm_90a")
    return emitError() << "arch: unknown '" << arch
                       << "' (known: sm_80, sm_90a)";
  if (dtype != "f32" && dtype != "bf16" && dtype != "f16")
    return emitError() << "dtype: unknown '" << dtype
                       << "' (known: f32, bf16, f16)";
  if (paddedIn < 1 || paddedOut < 1)
    return emitError() << "padded_in and padded_out must be positive";
  const bool fused = kernel != "cublas";
  auto tile = [&](const char *name, DenseI64ArrayAttr a, int64_t n,
                  bool wanted) -> LogicalResult {
    if (!a)
      return wanted ? emitError() << name << ": missing for kernel '" << kernel
                                  << "'"
                    : success();
    if (!wanted)
      return emitError() << name << ": not taken by kernel '" << kernel
                         << "'" << (fused ? " on this arch and dtype" : "");
    if (a.size() != n)
      return emitError() << name << ": " << n << " values expected, "
                         << a.size() << " given";
    for (int64_t v : a.asArrayRef())
      if (v < 1)
        return emitError() << name << ": values must be positive";
    return success();
  };
  const bool hopper = fused && arch == "sm_90a" && dtype != "f32";
  if (failed(tile("forward", forward, 4, fused)) ||
      failed(tile("backward_input", backwardInput, 4, fused)) ||
      (hopperForward && failed(tile("hopper_forward", hopperForward, 5, hopper))) ||
      (hopperBackwardInput &&
       failed(tile("hopper_backward_input", hopperBackwardInput, 5, hopper))))
    return failure();
  if (tmaGrads && !(hopperForward && hopperBackwardInput))
    return emitError() << "tma_grads needs both roles on the sm_90a kernel";
  return success();
}
