// RUN: einstruct-opt %s --einstruct-autodiff=save-residuals | FileCheck %s
// RUN: einstruct-opt %s --einstruct-autodiff=save-residuals --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// y = silu(x·w)·v. The sweep reads h = x·w (silu's slope) and s = silu(h)
// (dv = sᵀ·dy): @f_saving returns h alone after y, @f_backward_saved takes
// it before dy (each marked einstruct.residual) and recomputes s from it
// (half the bytes of saving both),
// but not h; the weights and x are arguments anyway, and xT, a reshape of
// an argument, is recomputed.
func.func @f(%x: tensor<?x4x6xf32>, %w: tensor<6x5xf32>, %v: tensor<5x2xf32>) -> tensor<?x2xf32> {
  %xT = tensor.collapse_shape %x [[0, 1], [2]] : tensor<?x4x6xf32> into tensor<?x6xf32>
  %h = einstruct.contract "ab,bc->ac" %xT, %w : tensor<?x6xf32>, tensor<6x5xf32> -> tensor<?x5xf32>
  %s = einstruct.unary "silu" %h : tensor<?x5xf32>
  %y = einstruct.contract "ac,cd->ad" %s, %v : tensor<?x5xf32>, tensor<5x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// The recomputing backward is still there.
// CHECK-LABEL: func.func @f_backward(%arg0: tensor<?x4x6xf32>, %arg1: tensor<6x5xf32>, %arg2: tensor<5x2xf32>, %arg3: tensor<?x2xf32>)
// CHECK: einstruct.contract "ab,bc->ac"

// CHECK-LABEL: func.func @f_saving(%arg0: tensor<?x4x6xf32>, %arg1: tensor<6x5xf32>, %arg2: tensor<5x2xf32>) -> (tensor<?x2xf32>, tensor<?x5xf32> {einstruct.residual})
// CHECK: %[[H:.*]] = einstruct.contract "ab,bc->ac"
// CHECK: %[[S:.*]] = einstruct.unary "silu" %[[H]]
// CHECK: %[[Y:.*]] = einstruct.contract "ac,cd->ad" %[[S]]
// CHECK: return %[[Y]], %[[H]] :

// CHECK-LABEL: func.func @f_backward_saved(%arg0: tensor<?x4x6xf32>, %arg1: tensor<6x5xf32>, %arg2: tensor<5x2xf32>, %arg3: tensor<?x5xf32> {einstruct.residual}, %arg4: tensor<?x2xf32>) -> (tensor<?x4x6xf32>, tensor<6x5xf32>, tensor<5x2xf32>)
// CHECK-NOT: "ab,bc->ac"
// CHECK: tensor.collapse_shape %arg0
// CHECK-NOT: "ab,bc->ac"
// CHECK: %[[S:.*]] = einstruct.unary "silu" %arg3
// CHECK-NOT: "ab,bc->ac"
// CHECK: einstruct.contract "ac,ad->cd" %[[S]], %arg4
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

// CHECK-LABEL: func.func @g_saving(%arg0: tensor<?x6xf32>, %arg1: tensor<6x6xf32>) -> (tensor<?x2x3xf32>, tensor<?x6xf32> {einstruct.residual})
// CHECK-LABEL: func.func @g_backward_saved(%arg0: tensor<?x6xf32>, %arg1: tensor<6x6xf32>, %arg2: tensor<?x6xf32> {einstruct.residual}, %arg3: tensor<?x2x3xf32>)
// CHECK-NOT: "ab,bc->ac"
// CHECK: return

// dv = rᵀ·dy reads r = h1 + h2 and nothing reads h1 or h2: r is saved,
// not the two sums it would be recomputed from.
func.func @r(%x: tensor<?x6xf32>, %w1: tensor<6x5xf32>, %w2: tensor<6x5xf32>, %v: tensor<5x2xf32>) -> tensor<?x2xf32> {
  %h1 = einstruct.contract "ab,bc->ac" %x, %w1 : tensor<?x6xf32>, tensor<6x5xf32> -> tensor<?x5xf32>
  %h2 = einstruct.contract "ab,bc->ac" %x, %w2 : tensor<?x6xf32>, tensor<6x5xf32> -> tensor<?x5xf32>
  %r = arith.addf %h1, %h2 : tensor<?x5xf32>
  %y = einstruct.contract "ac,cd->ad" %r, %v : tensor<?x5xf32>, tensor<5x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// CHECK-LABEL: func.func @r_saving(
// CHECK-SAME: -> (tensor<?x2xf32>, tensor<?x5xf32> {einstruct.residual})
// CHECK: %[[R:.*]] = arith.addf
// CHECK: return %{{.*}}, %[[R]] :
// CHECK-LABEL: func.func @r_backward_saved(
// CHECK-NOT: "ab,bc->ac"
// CHECK-NOT: arith.addf
// CHECK: einstruct.contract "ac,ad->cd" %arg4, %arg5
// CHECK: return

// p = e ⊙ s reads both factors, with e = exp(h) and s = silu(h), and
// dv reads q = reverse(p): h alone is saved and e, s, p and q recomputed
// from it (a fifth of the bytes).
func.func @p(%x: tensor<?x6xf32>, %w: tensor<6x5xf32>, %v: tensor<5x2xf32>) -> tensor<?x2xf32> {
  %h = einstruct.contract "ab,bc->ac" %x, %w : tensor<?x6xf32>, tensor<6x5xf32> -> tensor<?x5xf32>
  %e = einstruct.unary "exp" %h : tensor<?x5xf32>
  %s = einstruct.unary "silu" %h : tensor<?x5xf32>
  %p = einstruct.contract "ac,ac->ac" %e, %s : tensor<?x5xf32>, tensor<?x5xf32> -> tensor<?x5xf32>
  %q = einstruct.reverse %p dim 1 : tensor<?x5xf32>
  %y = einstruct.contract "ac,cd->ad" %q, %v : tensor<?x5xf32>, tensor<5x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// CHECK-LABEL: func.func @p_saving(
// CHECK-SAME: -> (tensor<?x2xf32>, tensor<?x5xf32> {einstruct.residual})
// CHECK: %[[H:.*]] = einstruct.contract "ab,bc->ac"
// CHECK: return %{{.*}}, %[[H]] :
// CHECK-LABEL: func.func @p_backward_saved(
// CHECK-NOT: "ab,bc->ac"
// CHECK: %[[E:.*]] = einstruct.unary "exp" %arg3
// CHECK: %[[S:.*]] = einstruct.unary "silu" %arg3
// CHECK: %[[P:.*]] = einstruct.contract "ac,ac->ac" %[[E]], %[[S]]
// CHECK: %[[Q:.*]] = einstruct.reverse %[[P]] dim 1
// CHECK: einstruct.contract "ac,ad->cd" %[[Q]], %arg4
// CHECK-NOT: "ab,bc->ac"
// CHECK: return

// dv reads q = reverse(h), and nothing reads h: saving q or h costs the
// same, and of equal cuts the one nearest the backward wins: q is saved,
// not recomputed.
func.func @q(%x: tensor<?x6xf32>, %w: tensor<6x5xf32>, %v: tensor<5x2xf32>) -> tensor<?x2xf32> {
  %h = einstruct.contract "ab,bc->ac" %x, %w : tensor<?x6xf32>, tensor<6x5xf32> -> tensor<?x5xf32>
  %q = einstruct.reverse %h dim 1 : tensor<?x5xf32>
  %y = einstruct.contract "ac,cd->ad" %q, %v : tensor<?x5xf32>, tensor<5x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// CHECK-LABEL: func.func @q_saving(
// CHECK-SAME: -> (tensor<?x2xf32>, tensor<?x5xf32> {einstruct.residual})
// CHECK: %[[Q:.*]] = einstruct.reverse
// CHECK: return %{{.*}}, %[[Q]] :
// CHECK-LABEL: func.func @q_backward_saved(
// CHECK-NOT: "ab,bc->ac"
// CHECK: einstruct.contract "ac,ad->cd" %arg3, %arg4
// CHECK-NOT: "ab,bc->ac"
// CHECK: return

// t = h·u sums two products per element, memory-bound: recomputed from h,
// which du = hᵀ·dt reads anyway, as is s = silu(t); h alone is saved.
func.func @c(%x: tensor<?x6xf32>, %w: tensor<6x2xf32>, %u: tensor<2x8xf32>, %v: tensor<8x3xf32>) -> tensor<?x3xf32> {
  %h = einstruct.contract "ab,bc->ac" %x, %w : tensor<?x6xf32>, tensor<6x2xf32> -> tensor<?x2xf32>
  %t = einstruct.contract "ab,bc->ac" %h, %u : tensor<?x2xf32>, tensor<2x8xf32> -> tensor<?x8xf32>
  %s = einstruct.unary "silu" %t : tensor<?x8xf32>
  %y = einstruct.contract "ab,bc->ac" %s, %v : tensor<?x8xf32>, tensor<8x3xf32> -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

// CHECK-LABEL: func.func @c_saving(
// CHECK-SAME: -> (tensor<?x3xf32>, tensor<?x2xf32> {einstruct.residual})
// CHECK: %[[H:.*]] = einstruct.contract "ab,bc->ac" %arg0, %arg1
// CHECK: return %{{.*}}, %[[H]] :
// CHECK-LABEL: func.func @c_backward_saved(
// CHECK-NOT: %arg0, %arg1 :
// CHECK: %[[T:.*]] = einstruct.contract "ab,bc->ac" %arg4, %arg2
// CHECK: einstruct.unary "silu" %[[T]]
// CHECK-NOT: %arg0, %arg1 :
// CHECK: return

// dbias reads the ones that broadcast it, whose extent the forward reads
// off h: @k_backward_saved reads it off x instead (h's rows are x's), so
// h's contraction is not recomputed for its extent alone.
func.func @k(%x: tensor<?x6xf32>, %w: tensor<6x5xf32>, %bias: tensor<5xf32>) -> tensor<?x5xf32> {
  %h = einstruct.contract "ab,bc->ac" %x, %w : tensor<?x6xf32>, tensor<6x5xf32> -> tensor<?x5xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %h, %c0 : tensor<?x5xf32>
  %e = tensor.empty(%n) : tensor<?xf32>
  %one = arith.constant 1.0 : f32
  %ones = linalg.fill ins(%one : f32) outs(%e : tensor<?xf32>) -> tensor<?xf32>
  %hb = einstruct.contract "a,c->ac" %ones, %bias : tensor<?xf32>, tensor<5xf32> -> tensor<?x5xf32>
  %s = arith.addf %h, %hb : tensor<?x5xf32>
  %y = einstruct.unary "silu" %s : tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}

// CHECK-LABEL: func.func @k_saving(
// CHECK-SAME: -> (tensor<?x5xf32>, tensor<?x5xf32> {einstruct.residual})
// CHECK-LABEL: func.func @k_backward_saved(
// CHECK-NOT: "ab,bc->ac"
// CHECK: tensor.dim %arg0
// CHECK-NOT: "ab,bc->ac"
// CHECK: return
