// RUN: einstruct-opt %s --einstruct-plan-cuda --split-input-file --verify-diagnostics | FileCheck %s
// The kernel of each contraction of a chain (a sequence mixer's): cuBLAS's
// strided batched GEMM when it sums enough (16) into a large enough matrix
// (256 entries), with operands transposed into one GEMM's layout where they
// are not in it (the fewest elements moved); else the direct kernel, which
// reads any layout.

// Already one GEMM's layout (batch n·c, rows l, columns s, summed k; the
// right operand read transposed): no copy.
// CHECK-LABEL: func.func @ready
// CHECK-NOT: linalg.transpose
// CHECK: einstruct.contract "nclk,ncsk->ncls" %arg0, %arg1 {cuda_kernel = "cublas"}
func.func @ready(%c: tensor<?x4x64x64xf32>, %b: tensor<?x4x64x64xf32>) -> tensor<?x4x64x64xf32> {
  %0 = einstruct.contract "nclk,ncsk->ncls" %c, %b : tensor<?x4x64x64xf32>, tensor<?x4x64x64xf32> -> tensor<?x4x64x64xf32>
  return %0 : tensor<?x4x64x64xf32>
}

// -----

// The SSD's in-chunk product: the head letter h sits between the batch
// letters in x and the result. x moves to n·h·c·s·p, the GEMM computes
// n·h·c·l·p, one transpose puts the result back.
// CHECK-LABEL: func.func @heads
// CHECK: %[[X:.*]] = linalg.transpose ins(%arg1 : tensor<?x4x64x12x64xf32>) outs({{.*}} : tensor<?x12x4x64x64xf32>) permutation = [0, 3, 1, 2, 4]
// CHECK: %[[Y:.*]] = einstruct.contract "nhcls,nhcsp->nhclp" %arg0, %[[X]] {cuda_kernel = "cublas"}
// CHECK: linalg.transpose ins(%[[Y]] : tensor<?x12x4x64x64xf32>) outs({{.*}} : tensor<?x4x64x12x64xf32>) permutation = [0, 2, 3, 1, 4]
// CHECK-NOT: einstruct.contract "nhcls,ncshp
func.func @heads(%m: tensor<?x12x4x64x64xf32>, %x: tensor<?x4x64x12x64xf32>) -> tensor<?x4x64x12x64xf32> {
  %0 = einstruct.contract "nhcls,ncshp->nclhp" %m, %x : tensor<?x12x4x64x64xf32>, tensor<?x4x64x12x64xf32> -> tensor<?x4x64x12x64xf32>
  return %0 : tensor<?x4x64x12x64xf32>
}

// -----

// Nothing summed (a broadcast product), and a 2-term sum (M2's complex
// products): the direct kernel, layouts as they are.
// CHECK-LABEL: func.func @direct
// CHECK-NOT: linalg.transpose
// CHECK: einstruct.contract "ncls,nhcls->nhcls" %arg0, %arg1 {cuda_kernel = "direct"}
// CHECK: einstruct.contract "skmcd,kmced->skmed" %arg2, %arg3 {cuda_kernel = "direct"}
func.func @direct(%cb: tensor<?x4x64x64xf32>, %w: tensor<?x12x4x64x64xf32>, %x: tensor<?x8x8x2x32xf32>, %k: tensor<8x8x2x2x32xf32>) -> (tensor<?x12x4x64x64xf32>, tensor<?x8x8x2x32xf32>) {
  %0 = einstruct.contract "ncls,nhcls->nhcls" %cb, %w : tensor<?x4x64x64xf32>, tensor<?x12x4x64x64xf32> -> tensor<?x12x4x64x64xf32>
  %1 = einstruct.contract "skmcd,kmced->skmed" %x, %k : tensor<?x8x8x2x32xf32>, tensor<8x8x2x2x32xf32> -> tensor<?x8x8x2x32xf32>
  return %0, %1 : tensor<?x12x4x64x64xf32>, tensor<?x8x8x2x32xf32>
}

// -----

// A kernel already chosen is kept: the direct kernel where cuBLAS would go.
// CHECK-LABEL: func.func @kept
// CHECK: einstruct.contract "nclk,ncsk->ncls" %arg0, %arg1 {cuda_kernel = "direct"}
func.func @kept(%c: tensor<?x4x64x64xf32>, %b: tensor<?x4x64x64xf32>) -> tensor<?x4x64x64xf32> {
  %0 = einstruct.contract "nclk,ncsk->ncls" %c, %b {cuda_kernel = "direct"} : tensor<?x4x64x64xf32>, tensor<?x4x64x64xf32> -> tensor<?x4x64x64xf32>
  return %0 : tensor<?x4x64x64xf32>
}

// -----

func.func @kept_bad(%a: tensor<?x32x32xf32>, %b: tensor<32x?x32xf32>) -> tensor<?x32x32xf32> {
  // expected-error @+1 {{'nik,knj->inj' is not laid out for one strided batched GEMM (remove cuda_kernel to plan again)}}
  %0 = einstruct.contract "nik,knj->inj" %a, %b {cuda_kernel = "cublas"} : tensor<?x32x32xf32>, tensor<32x?x32xf32> -> tensor<?x32x32xf32>
  return %0 : tensor<?x32x32xf32>
}

// -----

func.func @unknown_kernel(%c: tensor<?x4x64x64xf32>, %b: tensor<?x4x64x64xf32>) -> tensor<?x4x64x64xf32> {
  // expected-error @+1 {{cuda_kernel is 'cutlass': expected 'cublas' or 'direct'}}
  %0 = einstruct.contract "nclk,ncsk->ncls" %c, %b {cuda_kernel = "cutlass"} : tensor<?x4x64x64xf32>, tensor<?x4x64x64xf32> -> tensor<?x4x64x64xf32>
  return %0 : tensor<?x4x64x64xf32>
}

// -----

func.func @f64(%a: tensor<?x4xf64>, %b: tensor<4x5xf64>) -> tensor<?x5xf64> {
  // expected-error @+1 {{the CUDA contraction kernels take f32 only}}
  %0 = einstruct.contract "nk,kj->nj" %a, %b : tensor<?x4xf64>, tensor<4x5xf64> -> tensor<?x5xf64>
  return %0 : tensor<?x5xf64>
}
