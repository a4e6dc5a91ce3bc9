// C++ declarations of the einstruct dialect and its ops (from ODS).
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <optional>
#include <string>

#include "EinstructOpsDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "EinstructAttrs.h.inc"

#define GET_OP_CLASSES
#include "EinstructOps.h.inc"

namespace einstruct {
// A function argument attribute (unit) for --einstruct-autodiff: the
// argument is a constant (a DFT matrix, say), given no gradient and left
// out of the backward function's results.
inline constexpr llvm::StringLiteral kConstantArg = "einstruct.constant";
// A function argument and result attribute (unit) --einstruct-autodiff's
// save-residuals puts on @f_saving's residual results and
// @f_backward_saved's residual arguments: values kept between the two
// (float32 where a library's boundary is bfloat16).
inline constexpr llvm::StringLiteral kResidualAttr = "einstruct.residual";
// The op attribute holding a layer's #einstruct.cuda_plan
// (--einstruct-plan-cuda), which the CUDA kernels are emitted from.
inline constexpr llvm::StringLiteral kCudaPlanAttr = "einstruct.cuda_plan";

struct EinsumTerm;
// The einsum term a layer op describes (its spec and sizes attributes).
// Returns false with `error` set when the attributes are inconsistent.
bool termOf(LayerOp op, EinsumTerm &term, std::string &error);
bool termOf(mlir::StringRef spec, mlir::DictionaryAttr sizes, EinsumTerm &term,
            std::string &error);

// A search budget as `einstruct.budget` holds it (each key optional).
struct Budget {
  std::optional<double> maxFlopsRatio, minPsi, maxOmega;
  std::optional<int64_t> maxParams;
};
// Reads an `einstruct.budget` dictionary: numbers only, known keys, the
// ranges the CLI's flags take (max_flops_ratio finite and > 0, min_psi and
// max_omega in [0, 1], max_params a whole number >= 0; never NaN).
// Returns false with `error` naming the key and the problem.
bool readBudget(mlir::DictionaryAttr budget, Budget &out, std::string &error);

// The functions einstruct.unary applies (its `kind`).
llvm::ArrayRef<llvm::StringLiteral> unaryKinds();
} // namespace einstruct
