// The JIT's LLVM pipeline: -O3 for the host, its vectoriser told about
// glibc's vector math library (libmvec) when this process can load it, and
// without O3's partial loop unrolling.
#pragma once
#include "llvm/Support/Error.h"

#include <functional>
#include <string>

namespace llvm {
class Module;
class TargetMachine;
} // namespace llvm

namespace einstruct {

// The module transformer for mlir::ExecutionEngine: -O3 for `tm`, except
// for loop unrolling.
// - With libmvec loaded, loops calling expf, log1pf, sinf, ... vectorise into
//   its 8- or 16-lane functions (within 4 ulp; glibc's tables) instead of a
//   libm call per element.
// - Loops are unrolled only whole, and only as far as -O2 does (short
//   constant loops: a contraction's 3 scalar tail columns, a BTT's 2 ranks).
//   O3's partial unroller and its larger full-unroll threshold multiplied a
//   block's code (a Hydra block's backward compiled in 18 s instead of 13 s)
//   and made nothing measurably faster; the contraction micro-kernels are
//   unrolled where they are made (--einstruct-vectorize-contractions'
//   `steps`).
std::function<llvm::Error(llvm::Module *)>
jitOptimizer(llvm::TargetMachine *tm);

// What jitOptimizer does, for the object cache's key (an object depends on
// it, not only on the module).
std::string jitOptimizerKey();

// The vector math library the optimizer calls: "libmvec" or "".
const std::string &vectorMathLibrary();

} // namespace einstruct
