// Registration of einstruct's MLIR passes.
#pragma once
#include "mlir/Pass/Pass.h"

namespace einstruct {
#define GEN_PASS_DECL
#include "Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Passes.h.inc"
} // namespace einstruct
