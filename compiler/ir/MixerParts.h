// The IR builders EmitMixer.cpp's mixers and EmitBlock.cpp's blocks share:
// contractions shaped from their operands, a function's start, the mixer
// bodies (Hydra's, M2's convolution) as values.
#pragma once
#include "search/Mixer.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <string>

namespace einstruct::mixerir {

using mlir::Value;
inline constexpr int64_t kDyn = mlir::ShapedType::kDynamic;

// einstruct.contract with its result shaped from the operands' extents.
Value contract(mlir::OpBuilder &b, mlir::Location loc, const std::string &spec,
               Value lhs, Value rhs);

// A float32 tensor type.
mlir::RankedTensorType tensor(mlir::OpBuilder &b,
                              llvm::ArrayRef<int64_t> shape);

// A function of `args`, each marked einstruct.constant from `firstConstant`
// on, returning `result`; the builder placed at its start.
mlir::func::FuncOp startFunction(mlir::OpBuilder &b, mlir::ModuleOp module,
                                 const std::string &name,
                                 llvm::ArrayRef<mlir::Type> args,
                                 mlir::Type result, unsigned firstConstant);

// The function argument types of the plan's operands (mixerOperands: a
// per-sequence one with the batch first, dynamic); constants come after.
llvm::SmallVector<mlir::Type> operandTypes(mlir::OpBuilder &b,
                                           const MixerPlan &plan);

// Hydra's quasiseparable mixer on x [b, L, H, P], dt and a [b, L, 2, H],
// B and C [b, L, 2, N], d [b, L, H] (emitHydra's function body).
Value hydraCore(mlir::OpBuilder &b, mlir::Location loc, const SsdShape &s,
                int64_t L, Value x, Value dt, Value a, Value B, Value C,
                Value d);

// The m2-conv of x [S, L, C] with k, k_rev (null when causal) [L, C] and
// D [C], the DFT constants in m2ConvConstants' order (emitM2Conv's
// function body).
Value m2ConvCore(mlir::OpBuilder &b, mlir::Location loc, const M2ConvShape &s,
                 Value x, Value k, Value kRev, Value D,
                 llvm::ArrayRef<Value> constants);

} // namespace einstruct::mixerir
