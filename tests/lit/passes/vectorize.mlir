// RUN: einstruct-opt %s --einstruct-vectorize-contractions | FileCheck %s
// RUN: einstruct-opt %s --einstruct-vectorize-contractions="lanes=16 registers=32" | FileCheck %s --check-prefix=AVX512
// RUN: einstruct-opt %s --einstruct-vectorize-contractions="steps=1" | FileCheck %s --check-prefix=STEPS1

// A bufferized contraction (as --einstruct-lower-to-linalg and bufferization
// leave it) over a result that was not just zero-filled. AVX2 shape: the
// batch is tiled by 36, register tiles of 6 batch rows × 2 vectors of 8
// lanes (12 accumulators), the rows left over one at a time.
#map = affine_map<(d0, d1, d2, d3) -> (d1, d0, d2)>
#map1 = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> (d1, d0, d3)>
// CHECK-LABEL: func.func @contract
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step %c36
// CHECK: scf.for %[[G:.*]] =
// CHECK: arith.minsi
// CHECK: arith.remsi %{{.*}}, %c6
// CHECK: scf.for %[[N:.*]] = %[[T]] to %{{.*}} step %c6
// CHECK: scf.for %[[C:.*]] = %{{.*}} to %{{.*}} step %c16
// CHECK-COUNT-12: vector.load %arg2
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// The weight's two vectors are loaded once per step and shared by the rows.
// CHECK-COUNT-2: vector.load %arg1
// CHECK-NOT: vector.load %arg1
// CHECK: memref.load %arg0
// CHECK-NEXT: vector.broadcast
// CHECK-NEXT: vector.fma
// CHECK-NEXT: vector.fma
// CHECK: scf.yield
// CHECK-COUNT-12: vector.store
// The remainder: one row, two vectors.
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>)
// CHECK-NOT: linalg.generic
// AVX512-LABEL: func.func @contract
// AVX512: scf.for {{.*}} step %c36
// AVX512: scf.for {{.*}} step %c6
// AVX512: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
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

// Right after a zero fill of the result, the accumulators start at zero and
// the fill goes.
// CHECK-LABEL: func.func @filled
// CHECK-NOT: linalg.fill
// CHECK: %[[Z:.*]] = arith.constant dense<0.000000e+00> : vector<8xf32>
// CHECK-NOT: vector.load %arg2
// CHECK: scf.for {{.*}} iter_args(%{{.*}} = %[[Z]], %{{.*}} = %[[Z]]
// CHECK-NOT: linalg.fill
func.func @filled(%x: memref<?x16xf32>, %w: memref<16x32xf32>, %y: memref<?x32xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<?x32xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x16xf32>, memref<16x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A fill of another value (or of a non-zero) is kept, and so is the load.
// CHECK-LABEL: func.func @fill_nonzero
// CHECK: linalg.fill
// CHECK: vector.load %arg2
func.func @fill_nonzero(%x: memref<?x16xf32>, %w: memref<16x32xf32>, %y: memref<?x32xf32>) {
  %one = arith.constant 1.0 : f32
  linalg.fill ins(%one : f32) outs(%y : memref<?x32xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x16xf32>, memref<16x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A write between the fill and the contraction (here through a view of the
// result) keeps the fill and the accumulator loads.
// CHECK-LABEL: func.func @written_after_fill
// CHECK: linalg.fill
// CHECK: memref.store
// CHECK: vector.load %arg2
func.func @written_after_fill(%x: memref<?x16xf32>, %w: memref<16x32xf32>, %y: memref<?x32xf32>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %c0 = arith.constant 0 : index
  %v = memref.subview %y[0, 0] [1, 32] [1, 1] : memref<?x32xf32> to memref<32xf32, strided<[1]>>
  linalg.fill ins(%zero : f32) outs(%y : memref<?x32xf32>)
  memref.store %one, %v[%c0] : memref<32xf32, strided<[1]>>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x16xf32>, memref<16x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A weight gradient (summed over the batch): no dynamic result index, so
// the register rows are a static result index of the broadcast operand
// (f, 6 at a time) and the batch runs inside.
// CHECK-LABEL: func.func @weight_grad
// CHECK-NOT: step %c36
// CHECK: arith.remsi %{{.*}}, %c6
// CHECK: scf.for {{.*}} step %c6
// CHECK: scf.for {{.*}} iter_args
// CHECK: memref.load %arg1
func.func @weight_grad(%x: memref<?x32xf32>, %dz: memref<?x20xf32>, %dw: memref<20x32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d0)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %dz : memref<?x32xf32>, memref<?x20xf32>) outs(%dw : memref<20x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Of two candidate row indices the innermost (r) is too short to fill a
// register tile (2 < 6); the rows are f's (BTT's first weight gradient).
// CHECK-LABEL: func.func @short_inner_row
// CHECK: scf.for %[[F:.*]] = %{{.*}} to %{{.*}} step %c6
// CHECK: scf.for {{.*}} iter_args
// CHECK: memref.load %arg1[%[[F]], %{{.*}}, %{{.*}}]
func.func @short_inner_row(%x: memref<?x32xf32>, %dz: memref<20x2x?xf32>, %dw: memref<20x2x32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
      ins(%x, %dz : memref<?x32xf32>, memref<20x2x?xf32>) outs(%dw : memref<20x2x32xf32>) {
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

// A weight panel too large for cache (2048 summed × 16 columns × 4 B = 128 KB
// > 64 KB): cache-blocked. Batch tiles of 96 rows; the summed index in blocks
// of 512 (32 KB panels); for each block and 16-column panel, every 6-row
// group of the tile, so the panel is read from L1 by all of them. The
// accumulators are loaded and stored per block, so the zero fill stays.
// CHECK-LABEL: func.func @blocked
// CHECK: linalg.fill
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step %c96
// CHECK: scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %c512
// CHECK: scf.for %[[C:.*]] = %{{.*}} to %{{.*}} step %c16
// CHECK: arith.remsi %{{.*}}, %c6
// CHECK: scf.for %[[N:.*]] = %{{.*}} to %{{.*}} step %c6
// CHECK-COUNT-12: vector.load %arg2
// CHECK: %[[END:.*]] = arith.addi %[[K]], %c512
// CHECK: %[[HI:.*]] = arith.minsi %[[END]], %{{.*}}
// Unrolled by 4 up to a multiple of 4 steps, the rest one at a time.
// CHECK: %[[MAIN:.*]]:12 = scf.for %{{.*}} = %[[K]] to %[[UB:.*]] step %{{.*}} iter_args
// CHECK-COUNT-48: vector.fma
// CHECK: scf.for %{{.*}} = %[[UB]] to %[[HI]] step %{{.*}} iter_args(%{{.*}} = %[[MAIN]]#0
// CHECK-COUNT-12: vector.store
// CHECK-NOT: linalg.generic
func.func @blocked(%x: memref<?x2048xf32>, %w: memref<2048x256xf32>, %y: memref<?x256xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<?x256xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x2048xf32>, memref<2048x256xf32>) outs(%y : memref<?x256xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// An innermost extent that 8 does not divide (21): the first 16 columns are
// one vectorised contraction on subviews, the last 5 another, left to the
// scalar loops; the zero fill stays (the accumulators load it).
// CHECK-LABEL: func.func @tail
// CHECK: linalg.fill
// CHECK: memref.subview %arg1[0, 0] [16, 16] [1, 1]
// CHECK: memref.subview %arg2[0, 0] [%{{.*}}, 16] [1, 1]
// CHECK: vector.fma
// CHECK: memref.subview %arg1[0, 16] [16, 5] [1, 1]
// CHECK: memref.subview %arg2[0, 16] [%{{.*}}, 5] [1, 1]
// CHECK: linalg.generic
// CHECK-SAME: memref<16x5xf32, strided<[21, 1], offset: 16>>
// CHECK-NOT: linalg.generic
func.func @tail(%x: memref<?x16xf32>, %w: memref<16x21xf32>, %y: memref<?x21xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<?x21xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x16xf32>, memref<16x21xf32>) outs(%y : memref<?x21xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// The same in f64, which the micro-kernel does not take: the whole vectors'
// columns would not vectorise either, so the contraction is not split.
// CHECK-LABEL: func.func @tail_f64
// CHECK-NOT: memref.subview
// CHECK: linalg.generic
// CHECK-SAME: outs(%arg2 : memref<?x21xf64>)
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @tail_f64(%x: memref<?x16xf64>, %w: memref<16x21xf64>, %y: memref<?x21xf64>) {
  %zero = arith.constant 0.0 : f64
  linalg.fill ins(%zero : f64) outs(%y : memref<?x21xf64>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x16xf64>, memref<16x21xf64>) outs(%y : memref<?x21xf64>) {
  ^bb0(%a: f64, %b: f64, %acc: f64):
    %p = arith.mulf %a, %b : f64
    %s = arith.addf %acc, %p : f64
    linalg.yield %s : f64
  }
  return
}

// The innermost summed loop runs 4 steps per iteration: 4 × (6 rows × 2
// vectors) = 48 FMAs, then a remainder loop of one step (12 FMAs) for
// extents that 4 does not divide. With steps=1 nothing is unrolled.
// CHECK-LABEL: func.func @summed_steps
// CHECK: %[[MAIN:.*]]:12 = scf.for %{{.*}} = %{{.*}} to %[[UB:.*]] step %{{.*}} iter_args
// CHECK-COUNT-48: vector.fma
// CHECK-NOT: vector.fma
// CHECK: scf.yield
// CHECK: scf.for %{{.*}} = %[[UB]] to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %[[MAIN]]#0
// CHECK-COUNT-12: vector.fma
// CHECK-NOT: vector.fma
// CHECK: scf.yield
// STEPS1-LABEL: func.func @summed_steps
// STEPS1: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1{{.*}} iter_args
// STEPS1-COUNT-12: vector.fma
// STEPS1-NOT: vector.fma
// STEPS1: scf.yield
// STEPS1-NOT: iter_args
// STEPS1: vector.store
func.func @summed_steps(%x: memref<?x18xf32>, %w: memref<18x16xf32>, %y: memref<?x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x18xf32>, memref<18x16xf32>) outs(%y : memref<?x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
