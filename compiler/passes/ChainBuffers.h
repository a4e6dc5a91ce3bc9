// Where a chain plan's buffers live, once its steps are read
// (ChainOfFunction.h): bfloat16 inputs and outputs behind float32 copies,
// and scratch buffers in shared workspace slots.
#pragma once
#include "compiler/cuda/ChainPlan.h"

namespace einstruct {

// Scratch buffers share workspace slots (ChainPlan::slots): in order of
// their first write, each takes a slot of its size whose last reader came
// before that write (strictly, so no step reads and writes one slot), else
// a new one.
void assignSlots(ChainPlan &plan);

// Inputs and outputs stored as bfloat16 (constant inputs and residuals
// stay float32), converted into and out of float32 scratch copies around
// the steps.
void storeBoundaryAsBf16(ChainPlan &plan);

} // namespace einstruct
