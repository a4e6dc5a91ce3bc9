// RUN: einstruct-opt %s --einstruct-autodiff | FileCheck %s
// RUN: einstruct-opt %s --einstruct-autodiff --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// dx is the einsum read backwards (x and y swapped, d_in/d_out swapped);
// each dW contracts x and dy over the batch with the other weight, starting
// from whichever of x and dy gives the cheaper chain: for dA, dy·B first
// (n·f·e·g) then x (n·g·a·f) beats x·dy (n·g·a·f·e).
// CHECK-LABEL: func.func @layer_backward(%arg0: tensor<?x32xf32>, %arg1: tensor<4x8x4xf32>, %arg2: tensor<4x6x8xf32>, %arg3: tensor<?x24xf32>) -> (tensor<?x32xf32>, tensor<4x8x4xf32>, tensor<4x6x8xf32>)
// CHECK: einstruct.layer "fe,fga,feg->ga" {{.*}} d_in 24 d_out 32 (%arg3, %arg1, %arg2)
// CHECK: einstruct.contract "nfe,feg->nfg"
// CHECK: einstruct.contract "nfg,nga->fga"
// CHECK: einstruct.contract "nga,fga->ngf"
// CHECK: einstruct.contract "ngf,nfe->feg"
// CHECK: return
// LLVM: llvm.func @layer_backward
func.func @layer(%x: tensor<?x32xf32>, %a: tensor<4x8x4xf32>, %b: tensor<4x6x8xf32>) -> tensor<?x24xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 8, a = 4, f = 4, e = 6} d_in 32 d_out 24 (%x, %a, %b)
         : (tensor<?x32xf32>, tensor<4x8x4xf32>, tensor<4x6x8xf32>) -> tensor<?x24xf32>
  return %y : tensor<?x24xf32>
}

// A sum of two terms sharing the input: both dx contributions are added.
// CHECK-LABEL: func.func @dyad_backward
// CHECK: %[[A:.*]] = einstruct.layer "ko,koi->ki"
// CHECK: %[[B:.*]] = einstruct.layer "ok,koi->ik"
// CHECK: arith.addf %[[A]], %[[B]]
func.func @dyad(%x: tensor<?x8xf32>, %l: tensor<2x6x4xf32>, %u: tensor<2x6x4xf32>) -> tensor<?x12xf32> {
  %0 = einstruct.layer "ki,koi->ko" sizes {i = 4, k = 2, o = 6} d_in 8 d_out 12 (%x, %l) : (tensor<?x8xf32>, tensor<2x6x4xf32>) -> tensor<?x12xf32>
  %1 = einstruct.layer "ik,koi->ok" sizes {i = 4, k = 2, o = 6} d_in 8 d_out 12 (%x, %u) : (tensor<?x8xf32>, tensor<2x6x4xf32>) -> tensor<?x12xf32>
  %2 = arith.addf %0, %1 : tensor<?x12xf32>
  return %2 : tensor<?x12xf32>
}
