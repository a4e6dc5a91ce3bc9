// RUN: einstruct-opt %s --einstruct-autodiff -verify-diagnostics

// expected-error @+1 {{autodiff needs a function that returns a sum of einstruct.layer ops}}
func.func @scaled(%x: tensor<?x8xf32>, %w: tensor<8x8xf32>) -> tensor<?x8xf32> {
  %0 = einstruct.layer "i,oi->o" sizes {i = 8, o = 8} d_in 8 d_out 8 (%x, %w) : (tensor<?x8xf32>, tensor<8x8xf32>) -> tensor<?x8xf32>
  %1 = arith.mulf %0, %0 : tensor<?x8xf32>
  return %1 : tensor<?x8xf32>
}
