// RUN: einstruct-opt %s | einstruct-opt | FileCheck %s

// CHECK-LABEL: func.func @btt
// CHECK: einstruct.layer "gba,fdrga,fergb->fed" sizes {a = 4 : i64, b = 2 : i64, d = 3 : i64, e = 5 : i64, f = 2 : i64, g = 2 : i64, r = 2 : i64} d_in 16 d_out 30 theta [5.000000e-01, 2.500000e-01, 2.500000e-01, 3.000000e-01, 5.000000e-01, 2.000000e-01, 2.500000e-01] (%arg0, %arg1, %arg2) : (tensor<?x16xf32>, tensor<2x3x2x2x4xf32>, tensor<2x5x2x2x2xf32>) -> tensor<?x30xf32>
func.func @btt(%x: tensor<?x16xf32>, %a: tensor<2x3x2x2x4xf32>, %b: tensor<2x5x2x2x2xf32>) -> tensor<?x30xf32> {
  %y = einstruct.layer "gba,fdrga,fergb->fed" sizes {g = 2, b = 2, a = 4, f = 2, d = 3, r = 2, e = 5}
         d_in 16 d_out 30 theta [0.5, 0.25, 0.25, 0.3, 0.5, 0.2, 0.25]
         (%x, %a, %b) : (tensor<?x16xf32>, tensor<2x3x2x2x4xf32>, tensor<2x5x2x2x2xf32>) -> tensor<?x30xf32>
  return %y : tensor<?x30xf32>
}

// Padding: the indices cover 18 inputs while d_in is 16; batch dims may be many.
// CHECK-LABEL: func.func @padded_moe
// CHECK: einstruct.layer "ga,frga,ferg->fe" {{.*}} d_in 16 d_out 16 (%arg0, %arg1, %arg2) {experts = 4 : i64, top_k = 2 : i64} : (tensor<2x?x16xbf16>
func.func @padded_moe(%x: tensor<2x?x16xbf16>, %a: tensor<4x4x3x6xbf16>, %b: tensor<4x4x4x3xbf16>) -> tensor<2x?x16xbf16> {
  %y = einstruct.layer "ga,frga,ferg->fe" sizes {g = 3, a = 6, f = 4, r = 4, e = 4}
         d_in 16 d_out 16 (%x, %a, %b) {experts = 4, top_k = 2}
         : (tensor<2x?x16xbf16>, tensor<4x4x3x6xbf16>, tensor<4x4x4x3xbf16>) -> tensor<2x?x16xbf16>
  return %y : tensor<2x?x16xbf16>
}

// CHECK-LABEL: func.func @contract
// CHECK: einstruct.contract "nga,fga->nfg" %arg0, %arg1 : tensor<?x8x8xf32>, tensor<8x8x8xf32> -> tensor<?x8x8xf32>
func.func @contract(%x: tensor<?x8x8xf32>, %a: tensor<8x8x8xf32>) -> tensor<?x8x8xf32> {
  %z = einstruct.contract "nga,fga->nfg" %x, %a : tensor<?x8x8xf32>, tensor<8x8x8xf32> -> tensor<?x8x8xf32>
  return %z : tensor<?x8x8xf32>
}

// BTT-MoE, routed: the layer and the routing op.
// CHECK-LABEL: func.func @routed
// CHECK: %{{.*}}, %{{.*}} = einstruct.moe_layer "ga,frga,ferg->fe" sizes {{.*}} d_in 16 d_out 12 experts 4 top_k 2 (%arg0, %arg1, %arg2, %arg3) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>)
// CHECK: einstruct.route %{{.*}} top_k 2 : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>, tensor<f32>
func.func @routed(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>, %l: tensor<?x4xf32>) -> (tensor<?x12xf32>, tensor<f32>, tensor<?x2xf32>) {
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2
      (%x, %wg, %a, %b) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>)
  %g, %e, %aux2 = einstruct.route %l top_k 2 : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>, tensor<f32>
  return %y, %aux, %g : tensor<?x12xf32>, tensor<f32>, tensor<?x2xf32>
}

// CHECK-LABEL: func.func @routed_grad
// CHECK: %{{.*}}, %{{.*}}, %{{.*}}:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {{.*}} d_in 16 d_out 12 experts 4 top_k 2 (%arg0, %arg1, %arg2, %arg3) grad (%arg4, %arg5) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>, tensor<?x12xf32>, tensor<f32>) -> (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
func.func @routed_grad(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>, %dy: tensor<?x12xf32>, %daux: tensor<f32>) -> tensor<?x16xf32> {
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2
      (%x, %wg, %a, %b) grad (%dy, %daux) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>, tensor<?x12xf32>, tensor<f32>) -> (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
  return %dx : tensor<?x16xf32>
}

// Chunked SSD's decays: a[n, c, q, h] (2 chunks of 4 steps, 3 heads), and
// the inter-chunk scan of states [n, c, h, p, k].
// CHECK-LABEL: func.func @chunk_decays
// CHECK: %within, %to_end, %from_start, %chunk = einstruct.chunk_decays %arg0 : tensor<?x2x4x3xf32> -> tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32>
// CHECK: einstruct.chunk_decays_grad %arg0 grad (%within, %to_end, %from_start, %chunk) : tensor<?x2x4x3xf32>, tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32> -> tensor<?x2x4x3xf32>
// CHECK: %[[E:.*]] = einstruct.chunk_scan %arg1, %chunk : tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32> -> tensor<?x2x3x5x6xf32>
// CHECK: einstruct.chunk_scan_grad %arg1, %chunk grad %[[E]] : tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32>, tensor<?x2x3x5x6xf32> -> tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32>
func.func @chunk_decays(%a: tensor<?x2x4x3xf32>, %states: tensor<?x2x3x5x6xf32>) -> (tensor<?x2x4x3xf32>, tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32>) {
  %w, %e, %s, %g = einstruct.chunk_decays %a : tensor<?x2x4x3xf32> ->
      tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32>
  %da = einstruct.chunk_decays_grad %a grad (%w, %e, %s, %g) : tensor<?x2x4x3xf32>,
      tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32> -> tensor<?x2x4x3xf32>
  %in = einstruct.chunk_scan %states, %g : tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32> -> tensor<?x2x3x5x6xf32>
  %ds, %dg = einstruct.chunk_scan_grad %states, %g grad %in : tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32>, tensor<?x2x3x5x6xf32> -> tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32>
  return %da, %ds, %dg : tensor<?x2x4x3xf32>, tensor<?x2x3x5x6xf32>, tensor<?x3x2xf32>
}

// Hydra's flip of the sequence, along a static dimension.
// CHECK-LABEL: func.func @reverse
// CHECK: einstruct.reverse %arg0 dim 1 : tensor<?x5x3xf32>
func.func @reverse(%x: tensor<?x5x3xf32>) -> tensor<?x5x3xf32> {
  %r = einstruct.reverse %x dim 1 : tensor<?x5x3xf32>
  return %r : tensor<?x5x3xf32>
}

// An elementwise function of scale · x + shift; the defaults (1, 0) are
// elided.
// CHECK-LABEL: func.func @unary
// CHECK: einstruct.unary "rsqrt" %arg0 scale 1.250000e-01 shift 1.000000e-05 : tensor<?x8xf32>
// CHECK: einstruct.unary "silu" %{{.*}} : tensor<?x8xf32>
// CHECK: einstruct.unary "identity" %{{.*}} scale -1.000000e+00 : tensor<?x8xf32>
func.func @unary(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %r = einstruct.unary "rsqrt" %x scale 0.125 shift 1.0e-5 : tensor<?x8xf32>
  %s = einstruct.unary "silu" %r scale 1.0 : tensor<?x8xf32>
  %n = einstruct.unary "identity" %s scale -1.0 : tensor<?x8xf32>
  return %n : tensor<?x8xf32>
}
