// How an einstruct.contract of a contraction chain (a sequence mixer and its
// backward) runs on the GPU: as one cuBLAS strided batched GEMM when its
// operands are laid out for one, else (little to sum, or too small a
// matrix) as the direct kernel of einstruct_chain.cuh, which reads any
// layout. --einstruct-plan-cuda records the choice as `cuda_kernel` on the
// op, after transposing operands (linalg.transpose) into a GEMM's layout.
#pragma once
#include "dialects/EinstructDialect.h"
#include "search/Result.h"

#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace einstruct {

inline constexpr llvm::StringLiteral kCudaKernelAttr = "cuda_kernel";
inline constexpr llvm::StringLiteral kCublasKernel = "cublas";
inline constexpr llvm::StringLiteral kDirectKernel = "direct";

// The letters of "lhs,rhs->out" by role, each in the order of its first
// tensor among out, lhs, rhs: batch (in all three), m (lhs and out), n (rhs
// and out), k (lhs and rhs: summed).
struct ContractRoles {
  std::string lhs, rhs, out; // the spec's three parts
  std::string batch, m, n, k;
};
// An error names a letter one input alone has and the result lacks (a sum
// over one operand, which no contraction here needs).
Result<ContractRoles> contractRoles(const std::string &lhs,
                                    const std::string &rhs,
                                    const std::string &out);
// The same for `op`'s spec; an error is emitted at the op.
mlir::FailureOr<ContractRoles> contractRoles(ContractOp op);

// A layout that runs as one strided batched GEMM with no copy: out is
// B·X·Y, the operand P holding X is B·X·K or B·K·X and the other, Q, is
// B·K·Y or B·Y·K, each group in one order across the three (X, Y = m, n or
// n, m).
struct GemmForm {
  std::string batch, x, y, k;
  bool xFromLhs = true; // P is lhs
  bool pKFirst = false; // P = B·K·X
  bool qYFirst = false; // Q = B·Y·K
};
std::optional<GemmForm> gemmForm(const std::string &lhs, const std::string &rhs,
                                 const std::string &out);

// Plans `op` for the GPU (see above); an error is at the op.
mlir::LogicalResult planCudaContract(ContractOp op);

// Whether the `cuda_kernel` `op` has can run: "direct", or "cublas" with a
// summed letter on one GEMM's layout. An error is emitted at the op. The
// planner checks a kept plan with it, the CUDA emission what it reads.
mlir::LogicalResult checkCudaKernel(ContractOp op, llvm::StringRef kernel);

} // namespace einstruct
