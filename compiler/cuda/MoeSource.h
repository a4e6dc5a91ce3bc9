// The C ABI text of a generated BTT-MoE layer: routing, the grouped expert
// launches (one rank-1 twoStage per expert, on its rows only) and the
// backward pass, around kernels/einstruct_moe.cuh.
#pragma once
#include "compiler/cuda/CudaPlan.h"

namespace einstruct {

// Lines for the header's opening comment.
std::string moeHeaderNote(const CudaPlan &plan);
// Declarations (inside the header's extern "C").
std::string moeDecls(const std::string &name);
// Definitions (end of the .cu, after the plain layer's helpers).
std::string moeApi(const CudaPlan &plan, const std::string &name);

} // namespace einstruct
