// RUN: einstruct-opt %s --einstruct-lower-to-linalg -split-input-file -verify-diagnostics

func.func @unplanned(%x: tensor<?x64xf32>, %a: tensor<8x8x8xf32>, %b: tensor<8x8x8xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{run --einstruct-plan-contractions before lowering}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 8, a = 8, f = 8, e = 8} d_in 64 d_out 64 (%x, %a, %b)
         : (tensor<?x64xf32>, tensor<8x8x8xf32>, tensor<8x8x8xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
