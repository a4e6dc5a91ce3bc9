// RUN: einstruct-opt %s --einstruct-plan-contractions --einstruct-lower-to-linalg --canonicalize --einstruct-fuse-batch-tiles | FileCheck %s
// RUN: einstruct-opt %s --einstruct-plan-contractions --einstruct-lower-to-linalg --canonicalize --einstruct-fuse-batch-tiles="rows=6 summed-rows=16" | FileCheck %s --check-prefix=ROWS

// Monarch: the weight transposes run once, before the loop; the first
// contraction, the transpose of z and the second contraction run per tile
// of 24 rows, on tile-sized intermediates, into a slice of y.
// CHECK-LABEL: func.func @monarch
// CHECK: linalg.transpose ins(%arg1
// CHECK: linalg.transpose ins(%arg2
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step %c24
// CHECK: %[[N:.*]] = affine.min
// CHECK: tensor.extract_slice %{{.*}}[%[[T]], 0, 0] [%[[N]], 8, 8]
// CHECK: %[[Z0:.*]] = tensor.empty(%[[N]]) : tensor<?x8x8xf32>
// CHECK: linalg.fill {{.*}} outs(%[[Z0]]
// CHECK: %[[Z:.*]] = linalg.generic
// CHECK: %[[ZT0:.*]] = tensor.empty(%[[N]]) : tensor<?x8x8xf32>
// CHECK: linalg.transpose ins(%[[Z]] : tensor<?x8x8xf32>) outs(%[[ZT0]]
// CHECK: linalg.fill
// CHECK: %[[Y:.*]] = linalg.generic
// CHECK: tensor.insert_slice %[[Y]] into %{{.*}}[%[[T]], 0, 0] [%[[N]], 8, 8]
// CHECK-NOT: linalg.generic
// CHECK: return
// ROWS-LABEL: func.func @monarch
// ROWS: scf.for {{.*}} step %c6
// ROWS-NOT: scf.for {{.*}} step %c6
// ROWS: return
// ROWS-LABEL: func.func @weight_gradient
// ROWS: scf.for {{.*}} step %c16
func.func @monarch(%x: tensor<?x64xf32>, %a: tensor<8x8x8xf32>, %b: tensor<8x8x8xf32>) -> tensor<?x64xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {a = 8, e = 8, f = 8, g = 8} d_in 64 d_out 64 (%x, %a, %b)
         : (tensor<?x64xf32>, tensor<8x8x8xf32>, tensor<8x8x8xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// z is also returned: computing it inside y's loop would compute it twice,
// so it gets a tile loop of its own and y's loop reads slices of it.
// CHECK-LABEL: func.func @shared
// CHECK: %[[Z:.*]] = scf.for
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %arg1
// CHECK: %[[Y:.*]] = scf.for
// CHECK: tensor.extract_slice %[[Z]]
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %arg2
// CHECK-NOT: %arg1
// CHECK: return %[[Y]], %[[Z]]
func.func @shared(%x: tensor<?x8x8xf32>, %a: tensor<8x8x8xf32>, %b: tensor<8x8x8xf32>) -> (tensor<?x8x8xf32>, tensor<?x8x8xf32>) {
  %z = einstruct.contract "nga,gaf->ngf" %x, %a : tensor<?x8x8xf32>, tensor<8x8x8xf32> -> tensor<?x8x8xf32>
  %y = einstruct.contract "ngf,gfe->nge" %z, %b : tensor<?x8x8xf32>, tensor<8x8x8xf32> -> tensor<?x8x8xf32>
  return %y, %z : tensor<?x8x8xf32>, tensor<?x8x8xf32>
}

// A weight gradient sums over the batch: it is tiled along that sum by 32
// rows, each tile adding into the result the loop carries; its zero fill
// stays before the loop, and the batched z is computed (and transposed)
// per tile inside it.
// CHECK-LABEL: func.func @weight_gradient
// CHECK: %[[FILL:.*]] = linalg.fill {{.*}} outs(%{{.*}} : tensor<8x8xf32>)
// CHECK: scf.for %{{.*}} step %c32 iter_args(%[[ACC:.*]] = %[[FILL]]) -> (tensor<8x8xf32>)
// CHECK: %[[Z:.*]] = linalg.generic
// CHECK: %[[ZT:.*]] = linalg.transpose ins(%[[Z]]
// CHECK: %[[DW:.*]] = linalg.generic {{.*}} ins(%[[ZT]], %{{.*}} : tensor<8x?xf32>, tensor<?x8xf32>) outs(%[[ACC]] : tensor<8x8xf32>)
// CHECK: scf.yield %[[DW]]
// CHECK-NOT: linalg.fill
// CHECK: return
func.func @weight_gradient(%x: tensor<?x8xf32>, %a: tensor<8x8xf32>, %dy: tensor<?x8xf32>) -> tensor<8x8xf32> {
  %z = einstruct.contract "na,ab->nb" %x, %a : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %dw = einstruct.contract "nb,nc->bc" %z, %dy : tensor<?x8xf32>, tensor<?x8xf32> -> tensor<8x8xf32>
  return %dw : tensor<8x8xf32>
}

// A flip reads n − 1 − i, no slice of its input: it runs whole, neither
// tiled nor fused into the contraction's loop, which reads its result.
// CHECK-LABEL: func.func @flipped
// CHECK: %[[F:.*]] = linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<?x5x4xf32>)
// CHECK: scf.for
// CHECK: tensor.extract_slice %[[F]]
// CHECK: return
func.func @flipped(%x: tensor<?x5x4xf32>, %w: tensor<4x4xf32>) -> tensor<?x5x4xf32> {
  %r = einstruct.reverse %x dim 1 : tensor<?x5x4xf32>
  %y = einstruct.contract "nli,io->nlo" %r, %w : tensor<?x5x4xf32>, tensor<4x4xf32> -> tensor<?x5x4xf32>
  return %y : tensor<?x5x4xf32>
}
