// Which CUDA device a layer runs on, asked of the driver (libcuda.so.1,
// opened at run time so nothing links against CUDA): its compute capability
// decides the nvcc arch and the shared-memory budget of the plan.
#pragma once
#include "compiler/cuda/CudaPlan.h"

namespace einstruct {

struct CudaDevice {
  int ordinal = 0, major = 0, minor = 0;
  int64_t sharedPerBlock = 0; // opt-in bytes per block
  std::string name;
};

// Errors say what is missing: the driver, any device, this ordinal.
Result<CudaDevice> queryCudaDevice(int ordinal);

// The target to emit for `device`: sm_80 and sm_90a with their default
// budgets (so a library built ahead of time for them is the one found in
// the cache), other 8.x+ devices as sm_XY with their own opt-in budget.
Result<CudaTarget> targetFor(const CudaDevice &device, CudaDType dtype);

} // namespace einstruct
