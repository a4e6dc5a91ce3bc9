// RUN: einstruct-opt %s --einstruct-lower-ssd | FileCheck %s
// RUN: einstruct-opt %s --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// The in-chunk prefix sum is a masked reduction (t ≤ l) over the chunk; the
// four decays are exponentials of its differences; to_end and the chunk's
// decay read the prefix sum at the chunk's last step (3).
// CHECK-DAG: affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 3)>
// CHECK-DAG: affine_map<(d0, d1, d2) -> (d0, d1, d2, 3)>
// CHECK-LABEL: func.func @decays
// CHECK-NOT: einstruct.chunk_decays
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: arith.cmpi ule
// CHECK: math.exp
// CHECK: return
// LLVM: llvm.func @decays
func.func @decays(%a: tensor<?x2x4x3xf32>) -> (tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32>) {
  %w, %e, %s, %x = einstruct.chunk_decays %a : tensor<?x2x4x3xf32> ->
      tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32>
  return %w, %e, %s, %x : tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32>
}

// The gradient recomputes the decays and ends in the reverse prefix sum
// (l ≥ t) into a's layout.
// CHECK-LABEL: func.func @decays_grad
// CHECK-NOT: einstruct.chunk_decays_grad
// CHECK: arith.cmpi uge
// CHECK: return
// LLVM: llvm.func @decays_grad
func.func @decays_grad(%a: tensor<?x2x4x3xf32>, %w: tensor<?x3x2x4x4xf32>, %e: tensor<?x3x2x4xf32>, %s: tensor<?x3x2x4xf32>, %x: tensor<?x3x2xf32>) -> tensor<?x2x4x3xf32> {
  %da = einstruct.chunk_decays_grad %a grad (%w, %e, %s, %x) : tensor<?x2x4x3xf32>,
      tensor<?x3x2x4x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2x4xf32>, tensor<?x3x2xf32> -> tensor<?x2x4x3xf32>
  return %da : tensor<?x2x4x3xf32>
}

// The scan: a loop over chunks 1..c-1 carrying the last entering state,
// updated in place (decay · state + the previous chunk's own state) and
// inserted at chunk z.
// CHECK-LABEL: func.func @scan
// CHECK-NOT: einstruct.chunk_scan
// CHECK: scf.for %[[Z:.*]] = %c1{{.*}} to %c3{{.*}} step %c1{{.*}} iter_args
// CHECK: linalg.generic
// CHECK: tensor.insert_slice {{.*}}[0, %[[Z]], 0, 0, 0] [%{{.*}}, 1, 2, 4, 5] [1, 1, 1, 1, 1]
// CHECK: scf.yield
// LLVM: llvm.func @scan
func.func @scan(%s: tensor<?x3x2x4x5xf32>, %g: tensor<?x2x3xf32>) -> tensor<?x3x2x4x5xf32> {
  %e = einstruct.chunk_scan %s, %g : tensor<?x3x2x4x5xf32>, tensor<?x2x3xf32> -> tensor<?x3x2x4x5xf32>
  return %e : tensor<?x3x2x4x5xf32>
}

// Its gradient runs the recurrence backwards from chunk c-2 to 0.
// CHECK-LABEL: func.func @scan_grad
// CHECK: scf.for
// CHECK: scf.for %[[I:.*]] = %c0{{.*}} to %c2{{.*}} step %c1{{.*}} iter_args
// CHECK: arith.subi %c1{{.*}}, %[[I]]
// LLVM: llvm.func @scan_grad
func.func @scan_grad(%s: tensor<?x3x2x4x5xf32>, %g: tensor<?x2x3xf32>, %d: tensor<?x3x2x4x5xf32>) -> (tensor<?x3x2x4x5xf32>, tensor<?x2x3xf32>) {
  %ds, %dg = einstruct.chunk_scan_grad %s, %g grad %d : tensor<?x3x2x4x5xf32>, tensor<?x2x3xf32>, tensor<?x3x2x4x5xf32> -> tensor<?x3x2x4x5xf32>, tensor<?x2x3xf32>
  return %ds, %dg : tensor<?x3x2x4x5xf32>, tensor<?x2x3xf32>
}
