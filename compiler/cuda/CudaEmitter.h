// CUDA C++ for a planned layer: a header with a C ABI and a self-contained
// .cu (the kernel templates are copied in, specialised by constants).
#pragma once
#include "compiler/cuda/CudaPlan.h"

namespace einstruct {

struct CudaSources {
  std::string header; // NAME.h
  std::string source; // NAME.cu
};

// `name` prefixes every exported symbol; it must be a C identifier.
Result<CudaSources> emitCuda(const CudaPlan &plan, const std::string &name);

} // namespace einstruct
