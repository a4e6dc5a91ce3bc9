// A contraction chain's function, planned by --einstruct-plan-cuda, as the
// steps its CUDA library runs (compiler/cuda/ChainPlan.h): each
// einstruct.contract as its `cuda_kernel` says, linalg.transpose as a
// permute, the chunked SSD's ops as their kernels, einstruct.unary as an
// elementwise map, arith.addf and constant fills; reshapes alias their
// source. Every tensor is f32 with at most one dynamic dimension, whose
// extent is a multiple of the call's S (the sequences; S·L rows once a
// block's projections collapse the tokens), as the IR's reshapes, sizes
// and contractions give it.
#pragma once
#include "compiler/cuda/ChainPlan.h"
#include "search/Result.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace einstruct {

// An error names the op (and is emitted at it) that the kernels cannot run.
// With bf16Boundary, the plan's inputs and outputs are bfloat16, converted
// to and from float32 scratch buffers around the float32 steps. Argument k's
// dynamic extent is argumentExtents[k] where given, else S.
Result<ChainPlan>
chainOfFunction(mlir::func::FuncOp f, bool bf16Boundary = false,
                const std::vector<ChainSize> &argumentExtents = {});

// Whether `f` is a contraction chain (no layer ops; contractions or the
// SSD's ops), for which chainOfFunction is meant.
bool isChainFunction(mlir::func::FuncOp f);

} // namespace einstruct
