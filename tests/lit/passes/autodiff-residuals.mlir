// RUN: einstruct-opt %s --einstruct-autodiff=save-residuals | FileCheck %s
// RUN: einstruct-opt %s --einstruct-autodiff=save-residuals --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// y = silu(x·w)·v. The sweep reads h = x·w (silu's slope) and s = silu(h)
// (dv = sᵀ·dy): @f_saving returns both after y, @f_backward_saved takes
// them before dy and no longer computes the forward; the weights and x
// are arguments anyway, and xT, a reshape of an argument, is recomputed.
func.func @f(%x: tensor<?x4x3xf32>, %w: tensor<3x5xf32>, %v: tensor<5x2xf32>) -> tensor<?x2xf32> {
  %xT = tensor.collapse_shape %x [[0, 1], [2]] : tensor<?x4x3xf32> into tensor<?x3xf32>
  %h = einstruct.contract "ab,bc->ac" %xT, %w : tensor<?x3xf32>, tensor<3x5xf32> -> tensor<?x5xf32>
  %s = einstruct.unary "silu" %h : tensor<?x5xf32>
  %y = einstruct.contract "ac,cd->ad" %s, %v : tensor<?x5xf32>, tensor<5x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// The recomputing backward is still there.
// CHECK-LABEL: func.func @f_backward(%arg0: tensor<?x4x3xf32>, %arg1: tensor<3x5xf32>, %arg2: tensor<5x2xf32>, %arg3: tensor<?x2xf32>)
// CHECK: einstruct.contract "ab,bc->ac"

// CHECK-LABEL: func.func @f_saving(%arg0: tensor<?x4x3xf32>, %arg1: tensor<3x5xf32>, %arg2: tensor<5x2xf32>) -> (tensor<?x2xf32>, tensor<?x5xf32>, tensor<?x5xf32>)
// CHECK: %[[H:.*]] = einstruct.contract "ab,bc->ac"
// CHECK: %[[S:.*]] = einstruct.unary "silu" %[[H]]
// CHECK: %[[Y:.*]] = einstruct.contract "ac,cd->ad" %[[S]]
// CHECK: return %[[Y]], %[[H]], %[[S]]

// CHECK-LABEL: func.func @f_backward_saved(%arg0: tensor<?x4x3xf32>, %arg1: tensor<3x5xf32>, %arg2: tensor<5x2xf32>, %arg3: tensor<?x5xf32>, %arg4: tensor<?x5xf32>, %arg5: tensor<?x2xf32>) -> (tensor<?x4x3xf32>, tensor<3x5xf32>, tensor<5x2xf32>)
// CHECK-NOT: "ab,bc->ac"
// CHECK: tensor.collapse_shape %arg0
// CHECK-NOT: "ab,bc->ac"
// CHECK-NOT: "silu"
// CHECK: einstruct.contract "ac,ad->cd" %arg4, %arg5
// CHECK-NOT: "silu"
// CHECK: einstruct.unary "silu_grad" %arg3
// CHECK-NOT: "ab,bc->ac"
// CHECK: return

// LLVM: llvm.func @f_saving
// LLVM: llvm.func @f_backward_saved

// x's reshape takes its extent from h: still a view of an argument,
// recomputed, not saved; h is saved once for both of its reshapes.
func.func @g(%x: tensor<?x6xf32>, %w: tensor<6x6xf32>) -> tensor<?x2x3xf32> {
  %h = einstruct.contract "ab,bc->ac" %x, %w : tensor<?x6xf32>, tensor<6x6xf32> -> tensor<?x6xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x6xf32>
  %xe = tensor.expand_shape %x [[0], [1, 2]] output_shape [%n, 2, 3] : tensor<?x6xf32> into tensor<?x2x3xf32>
  %he = tensor.expand_shape %h [[0], [1, 2]] output_shape [%n, 2, 3] : tensor<?x6xf32> into tensor<?x2x3xf32>
  %y = einstruct.contract "abc,abc->abc" %he, %xe : tensor<?x2x3xf32>, tensor<?x2x3xf32> -> tensor<?x2x3xf32>
  return %y : tensor<?x2x3xf32>
}

// CHECK-LABEL: func.func @g_saving(%arg0: tensor<?x6xf32>, %arg1: tensor<6x6xf32>) -> (tensor<?x2x3xf32>, tensor<?x6xf32>)
// CHECK-LABEL: func.func @g_backward_saved(%arg0: tensor<?x6xf32>, %arg1: tensor<6x6xf32>, %arg2: tensor<?x6xf32>, %arg3: tensor<?x2x3xf32>)
// CHECK-NOT: "ab,bc->ac"
// CHECK: return
