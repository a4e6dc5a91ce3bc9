// RUN: einstruct-opt %s --einstruct-plan-cuda -split-input-file -verify-diagnostics
// RUN: not einstruct-opt %s --einstruct-plan-cuda=arch=sm_70 2>&1 | FileCheck %s --check-prefix=ARCH
// RUN: not einstruct-opt %s --einstruct-plan-cuda=dtype=f64 2>&1 | FileCheck %s --check-prefix=DTYPE
// RUN: not einstruct-opt %s --einstruct-plan-cuda=smem-kb=2000 2>&1 | FileCheck %s --check-prefix=SMEM

// Unknown targets are errors at the first layer, before anything is planned.
// ARCH: plan-cuda-errors.mlir:[[@LINE+7]]:8: error: --einstruct-plan-cuda: arch: unknown 'sm_70' (known: sm_80, sm_90a)
// DTYPE: plan-cuda-errors.mlir:[[@LINE+6]]:8: error: --einstruct-plan-cuda: dtype: unknown 'f64' (known: f32, bf16, f16)
// SMEM: error: --einstruct-plan-cuda: smem-kb: 2000 must be in [0, 1024]

// A three-core tensor train has no fused kernel: an error at the op.
func.func @tt(%x: tensor<?x8xf32>, %a: tensor<2x2x2xf32>, %b: tensor<2x2x2x2xf32>, %c: tensor<2x2x2xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{no CUDA plan: the CUDA emitter needs two weight tensors (structures.md §1); 'generic' has 3}}
  %y = einstruct.layer "abc,xap,pybq,qzc->xyz" sizes {a = 2, b = 2, c = 2, x = 2, y = 2, z = 2, p = 2, q = 2} d_in 8 d_out 8 (%x, %a, %b, %c) : (tensor<?x8xf32>, tensor<2x2x2xf32>, tensor<2x2x2x2xf32>, tensor<2x2x2xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
