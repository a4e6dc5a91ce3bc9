// CUDA C++ for a one-weight layer (GemmPlan): a header with a C ABI and a
// .cu that runs the plan's steps through cuBLAS and einstruct_gemm.cuh.
#pragma once
#include "compiler/cuda/CudaEmitter.h"
#include "compiler/cuda/GemmPlan.h"

namespace einstruct {

// `name` prefixes every exported symbol; it must be a C identifier.
Result<CudaSources> emitGemmCuda(const GemmPlan &plan, const std::string &name);

} // namespace einstruct
