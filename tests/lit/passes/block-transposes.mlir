// RUN: einstruct-opt %s --einstruct-block-transposes | FileCheck %s
// RUN: einstruct-opt %s --einstruct-block-transposes="lanes=16" | FileCheck %s --check-prefix=L16

// out[g, a, f] = in[f, g, a] (a Monarch weight made contiguous along f):
// 8 × 8 tiles through registers, 8 loads along a, one transpose, 8 stores
// along f.
// CHECK-LABEL: func.func @registers
// CHECK: scf.for %[[G:.*]] = %{{.*}} to %{{.*}} step %c1
// CHECK: scf.for %[[A:.*]] = %{{.*}} to %{{.*}} step %c8
// CHECK: scf.for %[[F:.*]] = %{{.*}} to %{{.*}} step %c8
// CHECK-COUNT-8: vector.load %arg0[%{{.*}}, %[[G]], %[[A]]] : memref<16x4x8xf32>, vector<8xf32>
// CHECK: vector.transpose %{{.*}}, [1, 0] : vector<8x8xf32> to vector<8x8xf32>
// CHECK-COUNT-8: vector.store %{{.*}}, %arg1[%[[G]], %{{.*}}, %[[F]]] : memref<4x8x16xf32>, vector<8xf32>
// CHECK-NOT: linalg.transpose
// With 16 lanes the a extent (8) does not divide: blocked scalar loops.
// L16-LABEL: func.func @registers
// L16-NOT: vector.transpose
// L16: step %c16
// L16: memref.load
func.func @registers(%in: memref<16x4x8xf32>, %out: memref<4x8x16xf32>) {
  linalg.transpose ins(%in : memref<16x4x8xf32>) outs(%out : memref<4x8x16xf32>) permutation = [1, 2, 0]
  return
}

// Extents that do not divide the lanes: 8 × 8 register tiles over the
// whole tiles (16 × 32), then the strips left (rows 16..20, and columns
// 32..36 of rows 0..16) in 16 × 16 blocks of scalar loops cut at the edges.
// CHECK-LABEL: func.func @edges
// CHECK: %[[PM:.*]] = arith.subi
// CHECK: %[[QM:.*]] = arith.subi
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[PM]] step %c8
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[QM]] step %c8
// CHECK: vector.transpose
// CHECK: scf.for %[[P:.*]] = %[[PM]] to %{{.*}} step %c16
// CHECK: scf.for %[[Q:.*]] = %{{.*}} to %{{.*}} step %c16
// CHECK: arith.minsi
// CHECK: arith.minsi
// CHECK: scf.for %[[I:.*]] = %[[P]] to
// CHECK: scf.for %[[J:.*]] = %[[Q]] to
// CHECK: %[[V:.*]] = memref.load %arg0[%[[J]], %[[I]]]
// CHECK: memref.store %[[V]], %arg1[%[[I]], %[[J]]]
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[PM]] step %c16
// CHECK: scf.for %{{.*}} = %[[QM]] to %{{.*}} step %c16
// CHECK-NOT: vector.
func.func @edges(%in: memref<36x20xf32>, %out: memref<20x36xf32>) {
  linalg.transpose ins(%in : memref<36x20xf32>) outs(%out : memref<20x36xf32>) permutation = [1, 0]
  return
}

// A dynamic extent (the batch as the last index, as in a weight gradient):
// register tiles over its whole tiles, a scalar strip for the rest.
// CHECK-LABEL: func.func @dynamic
// CHECK: arith.remsi
// CHECK: vector.transpose
// CHECK: memref.load
// CHECK-NOT: memref.load
func.func @dynamic(%in: memref<?x64xf32>, %out: memref<64x?xf32>) {
  linalg.transpose ins(%in : memref<?x64xf32>) outs(%out : memref<64x?xf32>) permutation = [1, 0]
  return
}

// An extent below the lanes: only the blocked scalar loops.
// CHECK-LABEL: func.func @blocked
// CHECK-NOT: vector.
// CHECK: scf.for %{{.*}} step %c16
// CHECK: memref.load
func.func @blocked(%in: memref<4x36xf32>, %out: memref<36x4xf32>) {
  linalg.transpose ins(%in : memref<4x36xf32>) outs(%out : memref<36x4xf32>) permutation = [1, 0]
  return
}

// The innermost index stays innermost: a plain copy, left alone.
// CHECK-LABEL: func.func @keeps_inner
// CHECK: linalg.transpose
func.func @keeps_inner(%in: memref<4x6x8xf32>, %out: memref<6x4x8xf32>) {
  linalg.transpose ins(%in : memref<4x6x8xf32>) outs(%out : memref<6x4x8xf32>) permutation = [1, 0, 2]
  return
}
