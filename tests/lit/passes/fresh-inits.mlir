// RUN: einstruct-opt %s --einstruct-fresh-inits | FileCheck %s

// a + b as --convert-elementwise-to-linalg writes it: a is also the init,
// which the payload never reads. The init becomes a fresh tensor of a's
// shape (its dynamic extent from a), so a is not copied when bufferized.
// CHECK-LABEL: func.func @sum
// CHECK: %[[N:.*]] = tensor.dim %arg0, %c0
// CHECK: %[[E:.*]] = tensor.empty(%[[N]]) : tensor<?x4xf32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%arg0, %arg1 : tensor<?x4xf32>, tensor<?x4xf32>) outs(%[[E]] : tensor<?x4xf32>)
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @sum(%a: tensor<?x4xf32>, %b: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %0 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a, %b : tensor<?x4xf32>, tensor<?x4xf32>) outs(%a : tensor<?x4xf32>) {
  ^bb0(%x: f32, %y: f32, %out: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// An accumulation reads its init: it keeps it.
// CHECK-LABEL: func.func @accumulate
// CHECK-NOT: tensor.empty
// CHECK: outs(%arg1 : tensor<4xf32>)
#row = affine_map<(d0, d1) -> (d1)>
func.func @accumulate(%a: tensor<3x4xf32>, %acc: tensor<4xf32>) -> tensor<4xf32> {
  %0 = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["reduction", "parallel"]}
      ins(%a : tensor<3x4xf32>) outs(%acc : tensor<4xf32>) {
  ^bb0(%x: f32, %out: f32):
    %s = arith.addf %x, %out : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// An init that is already empty is left as it is.
// CHECK-LABEL: func.func @already_empty
// CHECK: tensor.empty
// CHECK-NOT: tensor.empty
// CHECK: return
func.func @already_empty(%a: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %0 = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
      ins(%a : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%x: f32, %out: f32):
    %s = arith.mulf %x, %x : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
