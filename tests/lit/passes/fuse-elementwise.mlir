// RUN: einstruct-opt %s --einstruct-lower-to-linalg --canonicalize --einstruct-fuse-elementwise | FileCheck %s

// A short convolution of three taps as the blocks write it: a product per
// shifted window, their sum and an activation. One generic remains, reading
// the three windows and the three tap weights, with no zero fill.
// CHECK-LABEL: func.func @taps
// CHECK-NOT: linalg.fill
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel"]
// CHECK-SAME: ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x4xf32>, tensor<4xf32>, tensor<?x4xf32>, tensor<4xf32>, tensor<?x4xf32>, tensor<4xf32>)
// CHECK-COUNT-3: arith.mulf
// CHECK-COUNT-2: arith.addf
// CHECK: math.exp
// CHECK-NOT: linalg.generic
// CHECK: return
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @taps(%x: tensor<?x4xf32>, %w0: tensor<4xf32>, %w1: tensor<4xf32>, %w2: tensor<4xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x4xf32>
  %p = tensor.pad %x low[2, 0] high[0, 0] {
  ^bb0(%i: index, %j: index):
    %z = arith.constant 0.0 : f32
    tensor.yield %z : f32
  } : tensor<?x4xf32> to tensor<?x4xf32>
  %s0 = tensor.extract_slice %p[0, 0] [%n, 4] [1, 1] : tensor<?x4xf32> to tensor<?x4xf32>
  %s1 = tensor.extract_slice %p[1, 0] [%n, 4] [1, 1] : tensor<?x4xf32> to tensor<?x4xf32>
  %s2 = tensor.extract_slice %p[2, 0] [%n, 4] [1, 1] : tensor<?x4xf32> to tensor<?x4xf32>
  %t0 = einstruct.contract "lc,c->lc" %s0, %w0 : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %t1 = einstruct.contract "lc,c->lc" %s1, %w1 : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %t2 = einstruct.contract "lc,c->lc" %s2, %w2 : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %e = tensor.empty(%n) : tensor<?x4xf32>
  %a = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%t0, %t1 : tensor<?x4xf32>, tensor<?x4xf32>) outs(%e : tensor<?x4xf32>) {
  ^bb0(%u: f32, %v: f32, %o: f32):
    %s = arith.addf %u, %v : f32
    linalg.yield %s : f32
  } -> tensor<?x4xf32>
  %b = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a, %t2 : tensor<?x4xf32>, tensor<?x4xf32>) outs(%e : tensor<?x4xf32>) {
  ^bb0(%u: f32, %v: f32, %o: f32):
    %s = arith.addf %u, %v : f32
    linalg.yield %s : f32
  } -> tensor<?x4xf32>
  %y = einstruct.unary "exp" %b : tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// A contraction consumer keeps its multiply-add payload (the CPU
// micro-kernel's pattern): the activation before it stays its own op.
// CHECK-LABEL: func.func @into_contraction
// CHECK: math.exp
// CHECK-NEXT: linalg.yield
// CHECK: linalg.generic
// CHECK-SAME: "reduction"
// CHECK-NOT: math.exp
// CHECK: return
func.func @into_contraction(%x: tensor<?x4xf32>, %w: tensor<4x3xf32>) -> tensor<?x3xf32> {
  %a = einstruct.unary "exp" %x : tensor<?x4xf32>
  %y = einstruct.contract "nc,co->no" %a, %w : tensor<?x4xf32>, tensor<4x3xf32> -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

// A producer with a second use is not recomputed inside its consumer.
// CHECK-LABEL: func.func @two_uses
// CHECK-COUNT-2: linalg.generic
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @two_uses(%x: tensor<?x4xf32>, %w: tensor<4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %p = einstruct.contract "nc,c->nc" %x, %w : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %a = einstruct.unary "exp" %p : tensor<?x4xf32>
  return %p, %a : tensor<?x4xf32>, tensor<?x4xf32>
}

// A producer read by broadcast (the same value at every row) would be
// recomputed per row: it stays apart.
// CHECK-LABEL: func.func @broadcast
// CHECK: math.exp
// CHECK-NEXT: linalg.yield
// CHECK-SAME: f32
// CHECK-NEXT: } -> tensor<4xf32>
// CHECK: linalg.generic
// CHECK-NOT: math.exp
// CHECK: return
func.func @broadcast(%x: tensor<?x4xf32>, %v: tensor<4xf32>) -> tensor<?x4xf32> {
  %e = einstruct.unary "exp" %v : tensor<4xf32>
  %y = einstruct.contract "nc,c->nc" %x, %e : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
