// RUN: einstruct-opt %s --einstruct-plan-cuda | FileCheck %s
// RUN: einstruct-opt %s '--einstruct-plan-cuda=arch=sm_80 dtype=f32' | FileCheck %s --check-prefix=SM80
// RUN: einstruct-opt %s '--einstruct-plan-cuda=wgmma=false' | FileCheck %s --check-prefix=NOWGMMA
// The attribute round-trips: the planned module parses and prints the same.
// RUN: einstruct-opt %s --einstruct-plan-cuda | einstruct-opt | FileCheck %s

// Monarch-64 at 4096, bf16 on sm_90a: both roles on the wgmma/TMA kernel with
// the tuning table's tile (compiler/cuda/tuning.json: FC 16, NWG 1, STAGES 7,
// CL 1; 220272 B of shared memory), the weight gradients through TMA.
// CHECK-LABEL: func.func @monarch
// CHECK: einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080], hopper_forward = [16, 1, 7, 1, 220272], hopper_backward_input = [16, 1, 7, 1, 220272], tma_grads = true>
// f32 on sm_80: the portable kernel only.
// SM80-LABEL: func.func @monarch
// SM80: #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_80", dtype = "f32", padded_in = 4096, padded_out = 4096, forward = [64, 6, 68, 147456], backward_input = [64, 6, 68, 147456]>
// NOWGMMA-LABEL: func.func @monarch
// NOWGMMA: #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080]>
func.func @monarch(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// BTT rank 4 at 4096: the table's row FC 2, NWG 1, STAGES 4, CL 1.
// CHECK-LABEL: func.func @btt4
// CHECK: hopper_forward = [2, 1, 4, 1, 214080], hopper_backward_input = [2, 1, 4, 1, 214080], tma_grads = true>
func.func @btt4(%x: tensor<?x4096xf32>, %a: tensor<64x1x4x64x64xf32>, %b: tensor<64x64x4x64x1xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "gba,fdrga,fergb->fed" sizes {g = 64, b = 1, a = 64, f = 64, d = 1, r = 4, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) : (tensor<?x4096xf32>, tensor<64x1x4x64x64xf32>, tensor<64x64x4x64x1xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// A one-weight term (dense here) runs on cuBLAS: no tiles of ours.
// CHECK-LABEL: func.func @dense
// CHECK: #einstruct.cuda_plan<kernel = "cublas", arch = "sm_90a", dtype = "bf16", padded_in = 768, padded_out = 3072>
func.func @dense(%x: tensor<?x768xf32>, %w: tensor<3072x768xf32>) -> tensor<?x3072xf32> {
  %y = einstruct.layer "i,oi->o" sizes {i = 768, o = 3072} d_in 768 d_out 3072 (%x, %w) : (tensor<?x768xf32>, tensor<3072x768xf32>) -> tensor<?x3072xf32>
  return %y : tensor<?x3072xf32>
}

// BTT-MoE: the grouped kernel on one expert's rank-1 layer (portable tiles).
// CHECK-LABEL: func.func @moe
// CHECK: einstruct.moe_layer
// CHECK-SAME: #einstruct.cuda_plan<kernel = "grouped_moe", arch = "sm_90a", dtype = "bf16", padded_in = 1024, padded_out = 1024, forward = [64, 32, 40, 190464], backward_input = [64, 32, 40, 190464]>
func.func @moe(%x: tensor<?x1024xf32>, %wg: tensor<1024x8xf32>, %w1: tensor<32x8x32x32xf32>, %w2: tensor<32x32x8x32xf32>) -> (tensor<?x1024xf32>, tensor<f32>) {
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {a = 32, e = 32, f = 32, g = 32, r = 8} d_in 1024 d_out 1024 experts 8 top_k 2 (%x, %wg, %w1, %w2) : (tensor<?x1024xf32>, tensor<1024x8xf32>, tensor<32x8x32x32xf32>, tensor<32x32x8x32xf32>) -> (tensor<?x1024xf32>, tensor<f32>)
  return %y, %aux : tensor<?x1024xf32>, tensor<f32>
}
