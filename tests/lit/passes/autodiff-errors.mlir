// RUN: einstruct-opt %s --einstruct-autodiff -verify-diagnostics -split-input-file

// A product of two layer outputs is not linear: the op is named.
func.func @scaled(%x: tensor<?x8xf32>, %w: tensor<8x8xf32>) -> tensor<?x8xf32> {
  %0 = einstruct.layer "i,oi->o" sizes {i = 8, o = 8} d_in 8 d_out 8 (%x, %w) : (tensor<?x8xf32>, tensor<8x8xf32>) -> tensor<?x8xf32>
  // expected-error @+1 {{'arith.mulf' op autodiff has no gradient rule for this op}}
  %1 = arith.mulf %0, %0 : tensor<?x8xf32>
  return %1 : tensor<?x8xf32>
}

// -----

// A moe_layer's y alone (its aux loss dropped) is not differentiated.
func.func @moe_y_only(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>) -> tensor<?x12xf32> {
  // expected-error @+1 {{autodiff differentiates a moe_layer only as a function returning its (y, aux_loss)}}
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b)
      : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>)
  return %y : tensor<?x12xf32>
}

// -----

// Two results: which one to differentiate is not said.
// expected-error @+1 {{autodiff needs a function with one block and one result}}
func.func @two_results(%x: tensor<?x4xf32>, %w: tensor<4x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %0 = einstruct.contract "ni,io->no" %x, %w : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  return %0, %0 : tensor<?x4xf32>, tensor<?x4xf32>
}

// -----

// A scalar argument has no tensor gradient to return.
// expected-error @+1 {{autodiff needs ranked tensor arguments and result, got 'f32'}}
func.func @scalar_arg(%x: tensor<?x4xf32>, %w: tensor<4x4xf32>, %s: f32) -> tensor<?x4xf32> {
  %0 = einstruct.contract "ni,io->no" %x, %w : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

// A strided slice's gradient is no zero pad.
func.func @strided_slice(%x: tensor<?x8xf32>, %w: tensor<4x4xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x8xf32>
  // expected-error @+1 {{takes only unit-stride slices at static offsets that keep the rank here}}
  %s = tensor.extract_slice %x[0, 0] [%n, 4] [1, 2] : tensor<?x8xf32> to tensor<?x4xf32>
  %y = einstruct.contract "ni,io->no" %s, %w : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// The derivative kinds have no derivative of their own.
func.func @second_derivative(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{autodiff has no second derivative: "silu_grad" is itself one}}
  %y = einstruct.unary "silu_grad" %x : tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
