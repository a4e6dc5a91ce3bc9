// RUN: einstruct-opt %s --einstruct-plan-contractions | FileCheck %s
// RUN: einstruct-opt %s --einstruct-plan-contractions --einstruct-lower-to-linalg | FileCheck %s --check-prefix=LINALG
// RUN: einstruct-opt %s --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// BTT with rank: x·A first (fewest MACs), z keeps (g, r, f) — the largest
// index contiguous in x's side goes last, where the CPU kernel vectorises —
// then z·B.
// CHECK-LABEL: func.func @btt
// CHECK: %[[X:.*]] = tensor.expand_shape %arg0 {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 8, 4] : tensor<?x32xf32> into tensor<?x8x4xf32>
// CHECK: %[[Z:.*]] = einstruct.contract "nga,frga->ngrf" %[[X]], %arg1 : tensor<?x8x4xf32>, tensor<4x2x8x4xf32> -> tensor<?x8x2x4xf32>
// CHECK: %[[Y:.*]] = einstruct.contract "ngrf,ferg->nfe" %[[Z]], %arg2 : tensor<?x8x2x4xf32>, tensor<4x6x2x8xf32> -> tensor<?x4x6xf32>
// CHECK: tensor.collapse_shape %[[Y]] {{\[\[}}0], [1, 2]] : tensor<?x4x6xf32> into tensor<?x24xf32>
// LINALG-LABEL: func.func @btt
// The weight is transposed into loop order: the outer indices g, r, the
// summed a, and the innermost (vector) index f last.
// LINALG: linalg.transpose ins(%arg1 : tensor<4x2x8x4xf32>) outs(%{{.*}} : tensor<8x2x4x4xf32>) permutation = [2, 1, 3, 0]
// LINALG: linalg.fill
// LINALG: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]
// LINALG: arith.mulf {{.*}} fastmath<contract>
// LINALG: arith.addf {{.*}} fastmath<contract>
// LINALG-NOT: einstruct.contract
// LLVM: llvm.func @btt
func.func @btt(%x: tensor<?x32xf32>, %a: tensor<4x2x8x4xf32>, %b: tensor<4x6x2x8xf32>) -> tensor<?x24xf32> {
  %y = einstruct.layer "ga,frga,ferg->fe" sizes {g = 8, a = 4, f = 4, r = 2, e = 6} d_in 32 d_out 24 (%x, %a, %b)
         : (tensor<?x32xf32>, tensor<4x2x8x4xf32>, tensor<4x6x2x8xf32>) -> tensor<?x24xf32>
  return %y : tensor<?x24xf32>
}

// The order is chosen by cost: here contracting x with the second weight
// first is cheaper (b is tiny), so B comes first.
// CHECK-LABEL: func.func @order
// CHECK: einstruct.contract "nba,eb->nea"
// CHECK: einstruct.contract "nea,da->ned"
func.func @order(%x: tensor<?x128xf32>, %a: tensor<64x64xf32>, %b: tensor<1x2xf32>) -> tensor<?x64xf32> {
  %y = einstruct.layer "ba,da,eb->ed" sizes {b = 2, a = 64, d = 64, e = 1} d_in 128 d_out 64 (%x, %a, %b)
         : (tensor<?x128xf32>, tensor<64x64xf32>, tensor<1x2xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Padding: 16 features pad to 18, 20 outputs are cut to 16; batch dims
// collapse and expand back.
// CHECK-LABEL: func.func @padded
// CHECK: tensor.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : tensor<2x?x16xf32> into tensor<?x16xf32>
// CHECK: tensor.pad %{{.*}} low[0, 0] high[0, 2]
// CHECK: tensor.extract_slice %{{.*}}[0, 0] [%{{.*}}, 16] [1, 1] : tensor<?x20xf32> to tensor<?x16xf32>
// CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [2, %{{.*}}, 16] : tensor<?x16xf32> into tensor<2x?x16xf32>
func.func @padded(%x: tensor<2x?x16xf32>, %a: tensor<4x3x6xf32>, %b: tensor<4x5x3xf32>) -> tensor<2x?x16xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 3, a = 6, f = 4, e = 5} d_in 16 d_out 16 (%x, %a, %b)
         : (tensor<2x?x16xf32>, tensor<4x3x6xf32>, tensor<4x5x3xf32>) -> tensor<2x?x16xf32>
  return %y : tensor<2x?x16xf32>
}
