// Which forward values a derived backward keeps from its forward
// (--einstruct-autodiff=save-residuals).
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Operation.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SetVector.h"

namespace einstruct {

// Of the forward ops `forward` (one block's, in order, reading the
// function's arguments), the values to save so that a backward has every
// value `read` holds true of: the fewest bytes, by a minimum cut, the
// rest recomputed from the saved ones by memory-bound ops (elementwise
// maps, contractions summing at most 4 products per element, reversals,
// pads, the SSD's decays and chunk scan); larger contractions and layers
// are never recomputed,
// reshapes and slices never saved (their sources are). Of equally small
// sets, the one that recomputes least. Values recomputable from the
// arguments alone by extents, constants, fills, reshapes and slices are
// never saved.
llvm::SetVector<mlir::Value>
residualsToSave(llvm::ArrayRef<mlir::Operation *> forward,
                llvm::function_ref<bool(mlir::Value)> read);

// Rewrites each tensor.dim in `f` of a value nothing else reads to read
// the extent off the operands the value's op shapes it from (a reshape's
// output shape, a contraction's operand with the same letter, an
// elementwise op's input, ...), back to the arguments where it can; true
// when it rewrote one. Alternated with erasing what goes unread, no layer
// or contraction is recomputed for its extents alone once the residuals
// replace forward values.
bool readExtentsOffOperands(mlir::func::FuncOp f);

} // namespace einstruct
