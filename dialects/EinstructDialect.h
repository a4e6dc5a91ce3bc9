// C++ declarations of the einstruct dialect and its ops (from ODS).
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "EinstructOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "EinstructOps.h.inc"

namespace einstruct {
struct EinsumTerm;
// The einsum term a layer op describes (its spec and sizes attributes).
// Returns false with `error` set when the attributes are inconsistent.
bool termOf(LayerOp op, EinsumTerm &term, std::string &error);
bool termOf(mlir::StringRef spec, mlir::DictionaryAttr sizes, EinsumTerm &term,
            std::string &error);
} // namespace einstruct
