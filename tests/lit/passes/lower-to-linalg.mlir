// RUN: einstruct-opt %s --einstruct-lower-to-linalg | FileCheck %s
// RUN: einstruct-opt %s --einstruct-lower-to-linalg | FileCheck %s --check-prefix=REVERSED
// REVERSED: affine_map<(d0, d1, d2) -> (d0, -d1 + 4, d2)>

// Monarch's second stage: z[n, g, f] is read one scalar per summed g, and
// the weight also has f, so those scalars would be a cache line apart: z is
// transposed to [n, f, g]. The weight goes into loop order (f, g, e).
// CHECK-LABEL: func.func @monarch_stage2
// CHECK: linalg.transpose ins(%arg0 : tensor<?x8x4xf32>) outs(%{{.*}} : tensor<?x4x8xf32>) permutation = [0, 2, 1]
// CHECK: linalg.transpose ins(%arg1 : tensor<4x6x8xf32>) outs(%{{.*}} : tensor<4x8x6xf32>) permutation = [0, 2, 1]
// CHECK: linalg.generic
func.func @monarch_stage2(%z: tensor<?x8x4xf32>, %b: tensor<4x6x8xf32>) -> tensor<?x4x6xf32> {
  %y = einstruct.contract "ngf,feg->nfe" %z, %b : tensor<?x8x4xf32>, tensor<4x6x8xf32> -> tensor<?x4x6xf32>
  return %y : tensor<?x4x6xf32>
}

// BTT: of the summed indices the longest (g: 8, r: 2) goes last.
// CHECK-LABEL: func.func @btt_stage2
// CHECK: linalg.transpose ins(%arg0 : tensor<?x8x2x4xf32>) outs(%{{.*}} : tensor<?x4x2x8xf32>) permutation = [0, 3, 2, 1]
// CHECK: linalg.transpose ins(%arg1 : tensor<4x6x2x8xf32>) outs(%{{.*}} : tensor<4x2x8x6xf32>) permutation = [0, 2, 3, 1]
func.func @btt_stage2(%z: tensor<?x8x2x4xf32>, %b: tensor<4x6x2x8xf32>) -> tensor<?x4x6xf32> {
  %y = einstruct.contract "ngrf,ferg->nfe" %z, %b : tensor<?x8x2x4xf32>, tensor<4x6x2x8xf32> -> tensor<?x4x6xf32>
  return %y : tensor<?x4x6xf32>
}

// A weight gradient: both batched operands go into loop order (outer
// result indices, the summed batch, the vector index g last), so one outer
// iteration streams contiguous rows; --einstruct-fuse-batch-tiles makes
// these transposes per batch tile.
// CHECK-LABEL: func.func @grad_w2
// CHECK: linalg.transpose ins(%arg0 : tensor<?x8x4xf32>) outs(%{{.*}} : tensor<4x?x8xf32>) permutation = [2, 0, 1]
// CHECK: linalg.transpose ins(%arg1 : tensor<?x4x6xf32>) outs(%{{.*}} : tensor<4x6x?xf32>) permutation = [1, 2, 0]
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<4x?x8xf32>, tensor<4x6x?xf32>)
func.func @grad_w2(%z: tensor<?x8x4xf32>, %dy: tensor<?x4x6xf32>) -> tensor<4x6x8xf32> {
  %dw = einstruct.contract "ngf,nfe->feg" %z, %dy : tensor<?x8x4xf32>, tensor<?x4x6xf32> -> tensor<4x6x8xf32>
  return %dw : tensor<4x6x8xf32>
}

// dW1[f, g, a] = sum_n dz[n, g, f] x[n, g, a]: dz to (f, g, n), x to
// (g, n, a).
// CHECK-LABEL: func.func @grad_w1
// CHECK: linalg.transpose ins(%arg0 : tensor<?x8x4xf32>) outs(%{{.*}} : tensor<4x8x?xf32>) permutation = [2, 1, 0]
// CHECK: linalg.transpose ins(%arg1 : tensor<?x8x16xf32>) outs(%{{.*}} : tensor<8x?x16xf32>) permutation = [1, 0, 2]
// CHECK: linalg.generic
func.func @grad_w1(%dz: tensor<?x8x4xf32>, %x: tensor<?x8x16xf32>) -> tensor<4x8x16xf32> {
  %dw = einstruct.contract "ngf,nga->fga" %dz, %x : tensor<?x8x4xf32>, tensor<?x8x16xf32> -> tensor<4x8x16xf32>
  return %dw : tensor<4x8x16xf32>
}

// DYAD's transposed term: the result's last index k is in both operands, so
// neither would be a broadcast. The result is computed as [n, k, o] (o, which
// only the weight has, innermost; x's summed i moved last) and transposed
// back to [n, o, k].
// CHECK-LABEL: func.func @dyad_transposed
// CHECK: linalg.transpose ins(%arg0 : tensor<?x5x3xf32>) outs(%{{.*}} : tensor<?x3x5xf32>) permutation = [0, 2, 1]
// CHECK: %[[G:.*]] = linalg.generic
// CHECK-SAME: outs(%{{.*}} : tensor<?x3x4xf32>)
// CHECK: linalg.transpose ins(%[[G]] : tensor<?x3x4xf32>) outs(%{{.*}} : tensor<?x4x3xf32>) permutation = [0, 2, 1]
func.func @dyad_transposed(%x: tensor<?x5x3xf32>, %w: tensor<3x4x5xf32>) -> tensor<?x4x3xf32> {
  %y = einstruct.contract "nik,koi->nok" %x, %w : tensor<?x5x3xf32>, tensor<3x4x5xf32> -> tensor<?x4x3xf32>
  return %y : tensor<?x4x3xf32>
}

// einstruct.reverse: a copy that reads token 4 − l into token l.
// CHECK-LABEL: func.func @reverse
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x5x3xf32>
// CHECK: linalg.generic {indexing_maps = [#[[READ:.*]], #[[WRITE:.*]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<?x5x3xf32>) outs(%[[E]] : tensor<?x5x3xf32>)
// CHECK-NEXT: ^bb0(%[[IN:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: linalg.yield %[[IN]] : f32
func.func @reverse(%x: tensor<?x5x3xf32>) -> tensor<?x5x3xf32> {
  %r = einstruct.reverse %x dim 1 : tensor<?x5x3xf32>
  return %r : tensor<?x5x3xf32>
}
