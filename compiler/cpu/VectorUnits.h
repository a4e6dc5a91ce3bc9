// The vector registers the CPU micro-kernels are shaped for.
#pragma once
#include <cstdint>

namespace einstruct {

struct VectorUnits {
  int64_t lanes = 8;      // f32 lanes per register
  int64_t registers = 16; // architectural vector registers
};

// AVX2's shape: what einstruct-opt's pipeline uses, so that its output does
// not depend on the machine.
constexpr VectorUnits kAvx2{8, 16};
constexpr VectorUnits kAvx512{16, 32};

// This machine's: AVX-512 where LLVM reports avx512f, else AVX2's.
VectorUnits hostVectorUnits();

} // namespace einstruct
