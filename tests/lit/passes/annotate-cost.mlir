// RUN: einstruct-opt %s --einstruct-annotate-cost | FileCheck %s

// structures.md: Monarch at 4096 has 524,288 params and MACs, (ω,ψ,ν) = (0,1,0.5).
// CHECK-LABEL: func.func @monarch
// CHECK: einstruct.layer
// CHECK-SAME: einstruct.family = "monarch"
// CHECK-SAME: einstruct.flops = 524288 : i64
// CHECK-SAME: einstruct.nu = 5.000000e-01 : f64
// CHECK-SAME: einstruct.omega = 0.000000e+00 : f64
// CHECK-SAME: einstruct.params = 524288 : i64
// CHECK-SAME: einstruct.psi = 1.000000e+00 : f64
// CHECK-SAME: einstruct.rank_bound = 4096 : i64
func.func @monarch(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// Kronecker: 8,192 params for 524,288 MACs: ω = 0.5.
// CHECK-LABEL: func.func @kronecker
// CHECK: einstruct.layer
// CHECK-SAME: einstruct.family = "kronecker"
// CHECK-SAME: einstruct.flops = 524288 : i64
// CHECK-SAME: einstruct.omega = 5.000000e-01 : f64
// CHECK-SAME: einstruct.params = 8192 : i64
func.func @kronecker(%x: tensor<?x4096xf32>, %a: tensor<64x64xf32>, %b: tensor<64x64xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "ba,da,eb->ed" sizes {a = 64, b = 64, d = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) : (tensor<?x4096xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// BTT-MoE, 8 experts, top-2: active MACs = 2/8 of the rank-8 BTT + router.
// CHECK-LABEL: func.func @moe
// CHECK: einstruct.layer
// CHECK-SAME: einstruct.flops = 1081344 : i64
// CHECK-SAME: einstruct.params = 4227072 : i64
func.func @moe(%x: tensor<?x4096xf32>, %a: tensor<64x8x64x64xf32>, %b: tensor<64x64x8x64xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "ga,frga,ferg->fe" sizes {g = 64, a = 64, f = 64, e = 64, r = 8} d_in 4096 d_out 4096 (%x, %a, %b) {experts = 8, top_k = 2} : (tensor<?x4096xf32>, tensor<64x8x64x64xf32>, tensor<64x64x8x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// A static contraction: 16·8·8·8 multiply-adds.
// CHECK-LABEL: func.func @contract
// CHECK: einstruct.contract {{.*}} {einstruct.flops = 8192 : i64}
func.func @contract(%x: tensor<16x8x8xf32>, %a: tensor<8x8x8xf32>) -> tensor<16x8x8xf32> {
  %z = einstruct.contract "nga,fga->nfg" %x, %a : tensor<16x8x8xf32>, tensor<8x8x8xf32> -> tensor<16x8x8xf32>
  return %z : tensor<16x8x8xf32>
}

// The routed form: the same costs (router included), family btt-moe.
// CHECK-LABEL: func.func @routed_moe
// CHECK: einstruct.moe_layer
// CHECK-SAME: einstruct.family = "btt-moe"
// CHECK-SAME: einstruct.flops = 1081344 : i64
// CHECK-SAME: einstruct.params = 4227072 : i64
func.func @routed_moe(%x: tensor<?x4096xf32>, %wg: tensor<4096x8xf32>, %a: tensor<64x8x64x64xf32>, %b: tensor<64x64x8x64xf32>) -> (tensor<?x4096xf32>, tensor<f32>) {
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {g = 64, a = 64, f = 64, e = 64, r = 8} d_in 4096 d_out 4096 experts 8 top_k 2 (%x, %wg, %a, %b) : (tensor<?x4096xf32>, tensor<4096x8xf32>, tensor<64x8x64x64xf32>, tensor<64x64x8x64xf32>) -> (tensor<?x4096xf32>, tensor<f32>)
  return %y, %aux : tensor<?x4096xf32>, tensor<f32>
}
