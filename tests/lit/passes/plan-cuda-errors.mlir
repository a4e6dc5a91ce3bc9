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
  // expected-error @+1 {{the CUDA emitter needs two weight tensors (structures.md §1); 'generic' has 3}}
  %y = einstruct.layer "abc,xap,pybq,qzc->xyz" sizes {a = 2, b = 2, c = 2, x = 2, y = 2, z = 2, p = 2, q = 2} d_in 8 d_out 8 (%x, %a, %b, %c) : (tensor<?x8xf32>, tensor<2x2x2xf32>, tensor<2x2x2x2xf32>, tensor<2x2x2xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// A layer planned already keeps its #einstruct.cuda_plan, checked against the
// layer and the pass's target: a plan for another target is not replaced
// silently, and what it records must follow from the layer and run.
func.func @arch(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: planned for sm_80 f32, not for sm_90a bf16 (remove the attribute to plan again)}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_80", dtype = "f32", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @kind(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: kernel: 'grouped_moe', but the layer runs 'fused_two_stage'}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "grouped_moe", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @padded(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: padded_in, padded_out: 4096, 4104, but the layer pads to 4096, 4096}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4104, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @k2p(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: forward: K2P = 64, but the layer's stage-2 reduction pads to 72}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 64, 174080], backward_input = [64, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @tokens(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: backward_input: TT = 128 is not in [1, 64]: a tile holds 64 product rows, 1 per token}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [128, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @fc(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: forward: the tile needs 247808 B of shared memory, past the budget of 225280 B}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 24, 72, 247808], backward_input = [64, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @smem(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: forward: shared memory 174080 B recorded, but the tile needs 100352 B}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 8, 72, 174080], backward_input = [64, 16, 72, 174080]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @wgmma_width(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: hopper_forward: FC·R = 3 is not a wgmma width the kernel wraps (8, 16, 32, 64, 128)}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080], hopper_forward = [3, 1, 7, 1, 220272]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

func.func @tma(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  // expected-error @+1 {{einstruct.cuda_plan: tma_grads = false, but both roles run the sm_90a kernel}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080], hopper_forward = [16, 1, 7, 1, 220272], hopper_backward_input = [16, 1, 7, 1, 220272]>} : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}
