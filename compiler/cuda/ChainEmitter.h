// A contraction chain's CUDA library (NAME.h, NAME.cu) from its steps
// (ChainPlan.h): one host function that runs the steps in order on a
// stream, its scratch in a caller-given workspace.
#pragma once
#include "compiler/cuda/ChainPlan.h"
#include "compiler/cuda/CudaEmitter.h"

namespace einstruct {

// `name` prefixes every exported symbol; it must be a C identifier.
Result<CudaSources> emitChain(const ChainPlan &plan, const std::string &name);

} // namespace einstruct
