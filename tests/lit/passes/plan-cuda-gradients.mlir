// RUN: einstruct-opt %s --einstruct-autodiff --einstruct-plan-cuda | FileCheck %s
// The planner on --einstruct-autodiff's derived backward. A layer's dx is the
// einstruct.layer of the transposed term (search's transposedTerm, which the
// CUDA planner's backward-input role uses too), so its plan is the forward's
// with the roles swapped: its forward tile is the layer's backward_input and
// the other way round (a 1024 → 256 BTT of rank 2, whose roles differ).
// CHECK-LABEL: func.func @rect(
// CHECK: einstruct.layer "ga,frga,ferg->fe" {{.*}}einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 1024, padded_out = 256, forward = [64, 8, 40, 67584], backward_input = [64, 16, 24, 75776]>
// CHECK-LABEL: func.func @rect_backward(
// CHECK: einstruct.layer "fe,ferg,frga->ga" {{.*}}einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 256, padded_out = 1024, forward = [64, 16, 24, 75776], backward_input = [64, 8, 40, 67584]>
func.func @rect(%x: tensor<?x1024xf32>, %a: tensor<8x2x16x64xf32>, %b: tensor<8x32x2x16xf32>) -> tensor<?x256xf32> {
  %y = einstruct.layer "ga,frga,ferg->fe" sizes {g = 16, a = 64, f = 8, r = 2, e = 32} d_in 1024 d_out 256 (%x, %a, %b) : (tensor<?x1024xf32>, tensor<8x2x16x64xf32>, tensor<8x32x2x16xf32>) -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// A BTT-MoE's backward is one einstruct.moe_layer_grad, run by the grouped
// library its forward runs in: it gets the forward's plan.
// CHECK-LABEL: func.func @moe(
// CHECK: einstruct.moe_layer {{.*}}#einstruct.cuda_plan<kernel = "grouped_moe", arch = "sm_90a", dtype = "bf16", padded_in = 1024, padded_out = 1024, forward = [64, 32, 40, 190464], backward_input = [64, 32, 40, 190464]>
// CHECK-LABEL: func.func @moe_backward(
// CHECK: einstruct.moe_layer_grad {{.*}}#einstruct.cuda_plan<kernel = "grouped_moe", arch = "sm_90a", dtype = "bf16", padded_in = 1024, padded_out = 1024, forward = [64, 32, 40, 190464], backward_input = [64, 32, 40, 190464]>
func.func @moe(%x: tensor<?x1024xf32>, %wg: tensor<1024x8xf32>, %w1: tensor<32x8x32x32xf32>, %w2: tensor<32x32x8x32xf32>) -> (tensor<?x1024xf32>, tensor<f32>) {
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {a = 32, e = 32, f = 32, g = 32, r = 8} d_in 1024 d_out 1024 experts 8 top_k 2 (%x, %wg, %w1, %w2) : (tensor<?x1024xf32>, tensor<1024x8xf32>, tensor<32x8x32x32xf32>, tensor<32x32x8x32xf32>) -> (tensor<?x1024xf32>, tensor<f32>)
  return %y, %aux : tensor<?x1024xf32>, tensor<f32>
}
