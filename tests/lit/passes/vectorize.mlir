// RUN: einstruct-opt %s --einstruct-vectorize-contractions | FileCheck %s

// A bufferized contraction (as --einstruct-lower-to-linalg and bufferization
// leave it): the batch is tiled by 32, the innermost index runs in chunks of
// 4×8 lanes kept in registers across the summed index.
#map = affine_map<(d0, d1, d2, d3) -> (d1, d0, d2)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d1, d0, d3)>
// CHECK-LABEL: func.func @contract
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step %c32
// CHECK: scf.for %[[G:.*]] =
// CHECK: arith.minsi
// CHECK: scf.for %[[N:.*]] = %[[T]] to
// CHECK: scf.for %[[C:.*]] = %{{.*}} to %{{.*}} step %c32
// CHECK-COUNT-4: vector.load %arg2
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.broadcast
// CHECK: vector.fma
// CHECK-COUNT-4: vector.store
// CHECK-NOT: linalg.generic
func.func @contract(%x: memref<?x64x16xf32>, %w: memref<64x16x64xf32>, %y: memref<?x64x64xf32>) {
  linalg.generic {indexing_maps = [#map, #map1, #map2], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64x16xf32>, memref<64x16x64xf32>) outs(%y : memref<?x64x64xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// An innermost extent that is not a multiple of 8 stays a linalg.generic.
// CHECK-LABEL: func.func @odd
// CHECK: linalg.generic
func.func @odd(%x: memref<?x6xf32>, %w: memref<6x5xf32>, %y: memref<?x5xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x6xf32>, memref<6x5xf32>) outs(%y : memref<?x5xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
