// RUN: einstruct-opt %s --einstruct-lower-moe -split-input-file | FileCheck %s
// RUN: einstruct-opt %s --einstruct-lower-to-llvm -split-input-file | FileCheck %s --check-prefix=LLVM

// A BTT-MoE layer: router layer, routing loops, counting sort, then per
// expert its rank-1 layer on its gathered rows, only when it has any.
// CHECK-LABEL: func.func @moe
// CHECK-NOT: einstruct.moe_layer
// CHECK: einstruct.layer "i,io->o" sizes {i = 64 : i64, o = 4 : i64} d_in 64 d_out 4
// Routing: one loop over tokens carrying gates, experts, p-sums, the lse²
// sum and the counts; exp/log in f64.
// CHECK: scf.for {{.*}} -> (tensor<?x2xf32>, tensor<?x2xi32>, tensor<4xf64>, f64, tensor<4xi64>)
// CHECK: math.exp {{.*}} : f64
// CHECK: math.log {{.*}} : f64
// Top-k: a strict '>' keeps the lower index on ties.
// CHECK: arith.cmpf ogt
// CHECK: arith.constant 9.9999999999999995E-7 : f64
// CHECK-NOT: einstruct.route
// The counting sort: counts, offsets [E + 1], slots placed by expert.
// CHECK: tensor<4xindex>
// CHECK: tensor<5xindex>
// CHECK: tensor<?xindex>
// CHECK: scf.for %[[E:.*]] = {{.*}} iter_args({{.*}}) -> (tensor<?x64xf32>)
// CHECK: scf.if
// CHECK: tensor.extract_slice %arg0[{{.*}}, 0] [1, 64] [1, 1]
// CHECK: tensor.extract_slice %arg2[0, %[[E]], 0, 0] [8, 1, 8, 8]
// CHECK: tensor.extract_slice %arg3[0, 0, %[[E]], 0] [8, 8, 1, 8]
// CHECK: einstruct.layer "ga,frga,ferg->fe" sizes {a = 8 : i64, e = 8 : i64, f = 8 : i64, g = 8 : i64, r = 1 : i64}
// CHECK: linalg.generic
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: } else {
// CHECK: return
// The whole pipeline lowers it: no einstruct, tensor or scf op is left.
// LLVM-LABEL: llvm.func @moe
// LLVM-NOT: einstruct.
// LLVM-NOT: scf.
// LLVM: llvm.return
func.func @moe(%x: tensor<?x64xf32>, %wg: tensor<64x4xf32>, %w1: tensor<8x4x8x8xf32>, %w2: tensor<8x8x4x8xf32>) -> (tensor<?x64xf32>, tensor<f32>) {
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {a = 8, e = 8, f = 8, g = 8, r = 4} d_in 64 d_out 64 experts 4 top_k 2 (%x, %wg, %w1, %w2)
      : (tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>) -> (tensor<?x64xf32>, tensor<f32>)
  return %y, %aux : tensor<?x64xf32>, tensor<f32>
}

// -----

// A route op of its own is lowered too.
// CHECK-LABEL: func.func @route
// CHECK-NOT: einstruct.route
// CHECK: tensor.from_elements {{.*}} : tensor<f32>
func.func @route(%l: tensor<?x8xf32>) -> (tensor<?x3xf32>, tensor<?x3xi32>, tensor<f32>) {
  %g, %e, %aux = einstruct.route %l top_k 3 : tensor<?x8xf32> -> tensor<?x3xf32>, tensor<?x3xi32>, tensor<f32>
  return %g, %e, %aux : tensor<?x3xf32>, tensor<?x3xi32>, tensor<f32>
}

// -----

// The gradient walks the same groups. Per busy expert: x rows and gated dy
// rows gathered, the expert's rank-1 layer recomputed (for dgate), its dx
// (the einsum read backwards) and its weight-slice gradients (contraction
// chains) put back at the expert, dgate = <dy_t, ys_i> summed in f64, dx
// rows added per token. Then the routing's gradient (token loop, f64) and
// the router's: dx += dlogits·routerᵀ, drouter = xᵀ·dlogits.
// CHECK-LABEL: func.func @moe_grad
// CHECK-NOT: einstruct.moe_layer_grad
// CHECK: einstruct.layer "i,io->o"
// CHECK: scf.for %[[E:arg[0-9]+]] = {{.*}} -> (tensor<?x64xf32>, tensor<?xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>)
// CHECK: scf.if
// CHECK: tensor.extract_slice %arg0[{{.*}}, 0] [1, 64] [1, 1]
// CHECK: tensor.extract_slice %arg4[{{.*}}, 0] [1, 64] [1, 1]
// CHECK: arith.mulf
// CHECK: einstruct.layer "ga,frga,ferg->fe" {{.*}} r = 1 : i64}
// CHECK: einstruct.layer "fe,ferg,frga->ga" {{.*}} r = 1 : i64}
// CHECK-DAG: einstruct.contract {{.*}} -> tensor<8x1x8x8xf32>
// CHECK-DAG: einstruct.contract {{.*}} -> tensor<8x8x1x8xf32>
// CHECK: arith.extf {{.*}} to f64
// CHECK: arith.truncf {{.*}} f64 to f32
// CHECK: tensor.insert_slice {{.*}} into %{{.*}}[0, %[[E]], 0, 0] [8, 1, 8, 8]
// CHECK: tensor.insert_slice {{.*}} into %{{.*}}[0, 0, %[[E]], 0] [8, 8, 1, 8]
// CHECK: scf.for {{.*}} -> (tensor<?x4xf32>)
// CHECK: math.exp {{.*}} : f64
// CHECK: %[[DX:.*]] = einstruct.layer "o,io->i" {{.*}} d_in 4 d_out 64
// CHECK: %[[DWG:.*]] = einstruct.contract "ni,no->io" %arg0
// CHECK: %[[SUM:.*]] = arith.addf %{{.*}}, %[[DX]] : tensor<?x64xf32>
// CHECK: return %[[SUM]], %[[DWG]]
// LLVM-LABEL: llvm.func @moe_grad
// LLVM-NOT: einstruct.
// LLVM-NOT: scf.
// LLVM: llvm.return
func.func @moe_grad(%x: tensor<?x64xf32>, %wg: tensor<64x4xf32>, %w1: tensor<8x4x8x8xf32>, %w2: tensor<8x8x4x8xf32>, %dy: tensor<?x64xf32>, %daux: tensor<f32>) -> (tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>) {
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {a = 8, e = 8, f = 8, g = 8, r = 4} d_in 64 d_out 64 experts 4 top_k 2 (%x, %wg, %w1, %w2) grad (%dy, %daux)
      : (tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>, tensor<?x64xf32>, tensor<f32>) -> (tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>)
  return %dx, %dwg, %dw#0, %dw#1 : tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>
}
