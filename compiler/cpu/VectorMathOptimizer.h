// LLVM's -O3 for the JIT, its vectoriser told about glibc's vector math
// library (libmvec) when this process can load it.
#pragma once
#include "llvm/Support/Error.h"

#include <functional>
#include <string>

namespace llvm {
class Module;
class TargetMachine;
} // namespace llvm

namespace einstruct {

// The module transformer for mlir::ExecutionEngine: -O3 for `tm`. With
// libmvec loaded, loops calling expf, log1pf, sinf, ... vectorise into its
// 8- or 16-lane functions (within 4 ulp; glibc's tables) instead of a libm
// call per element; without it, plain -O3 (MLIR's transformer).
std::function<llvm::Error(llvm::Module *)>
vectorMathOptimizer(llvm::TargetMachine *tm);

// What the optimizer links against, for the object cache's key: "libmvec"
// or "".
const std::string &vectorMathLibrary();

} // namespace einstruct
