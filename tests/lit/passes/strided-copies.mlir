// RUN: einstruct-opt %s --einstruct-strided-copies | FileCheck %s
// RUN: einstruct-opt %s --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// A copy into a window of a larger buffer (Hydra's shift by one token):
// a copying linalg.generic over the window, which becomes loops, not the
// runtime's element-at-a-time memrefCopy.
// CHECK-LABEL: func.func @window
// CHECK-NOT: memref.copy
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.*}} : memref<?x3x8xf32, strided<[32, 8, 1]>>)
// CHECK-SAME: outs(%{{.*}} : memref<?x3x8xf32, strided<[32, 8, 1], offset: 8>>)
// CHECK-NEXT: ^bb0(%[[IN:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: linalg.yield %[[IN]] : f32
// LLVM-LABEL: llvm.func @window
// LLVM-NOT: memrefCopy
// LLVM: llvm.return
func.func @window(%a: memref<?x4x8xf32>, %b: memref<?x4x8xf32>) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %a, %c0 : memref<?x4x8xf32>
  %from = memref.subview %a[0, 0, 0] [%n, 3, 8] [1, 1, 1] : memref<?x4x8xf32> to memref<?x3x8xf32, strided<[32, 8, 1]>>
  %to = memref.subview %b[0, 1, 0] [%n, 3, 8] [1, 1, 1] : memref<?x4x8xf32> to memref<?x3x8xf32, strided<[32, 8, 1], offset: 8>>
  memref.copy %from, %to : memref<?x3x8xf32, strided<[32, 8, 1]>> to memref<?x3x8xf32, strided<[32, 8, 1], offset: 8>>
  return
}

// Contiguous copies (identity layouts, or a static contiguous window) stay
// memref.copy: one memcpy each.
// CHECK-LABEL: func.func @contiguous
// CHECK: memref.copy %arg0, %arg1 : memref<?x8xf32> to memref<?x8xf32>
// CHECK: memref.copy %{{.*}}, %{{.*}} : memref<2x8xf32, strided<[8, 1], offset: 8>> to memref<2x8xf32>
// CHECK-NOT: linalg.generic
func.func @contiguous(%a: memref<?x8xf32>, %b: memref<?x8xf32>, %c: memref<4x8xf32>, %d: memref<2x8xf32>) {
  memref.copy %a, %b : memref<?x8xf32> to memref<?x8xf32>
  %rows = memref.subview %c[1, 0] [2, 8] [1, 1] : memref<4x8xf32> to memref<2x8xf32, strided<[8, 1], offset: 8>>
  memref.copy %rows, %d : memref<2x8xf32, strided<[8, 1], offset: 8>> to memref<2x8xf32>
  return
}
