// RUN: einstruct-opt %s --einstruct-lower-moe -verify-diagnostics -split-input-file

func.func @bf16(%x: tensor<?x64xbf16>, %wg: tensor<64x4xbf16>, %w1: tensor<8x4x8x8xbf16>, %w2: tensor<8x8x4x8xbf16>) -> (tensor<?x64xbf16>, tensor<f32>) {
  // expected-error @+1 {{is lowered for f32 only, got 'bf16'}}
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {a = 8, e = 8, f = 8, g = 8, r = 4} d_in 64 d_out 64 experts 4 top_k 2 (%x, %wg, %w1, %w2)
      : (tensor<?x64xbf16>, tensor<64x4xbf16>, tensor<8x4x8x8xbf16>, tensor<8x8x4x8xbf16>) -> (tensor<?x64xbf16>, tensor<f32>)
  return %y, %aux : tensor<?x64xbf16>, tensor<f32>
}

// -----

func.func @bf16_grad(%x: tensor<?x64xbf16>, %wg: tensor<64x4xbf16>, %w1: tensor<8x4x8x8xbf16>, %w2: tensor<8x8x4x8xbf16>, %dy: tensor<?x64xbf16>, %daux: tensor<f32>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{is lowered for f32 only, got 'bf16'}}
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {a = 8, e = 8, f = 8, g = 8, r = 4} d_in 64 d_out 64 experts 4 top_k 2 (%x, %wg, %w1, %w2) grad (%dy, %daux)
      : (tensor<?x64xbf16>, tensor<64x4xbf16>, tensor<8x4x8x8xbf16>, tensor<8x8x4x8xbf16>, tensor<?x64xbf16>, tensor<f32>) -> (tensor<?x64xbf16>, tensor<64x4xbf16>, tensor<8x4x8x8xbf16>, tensor<8x8x4x8xbf16>)
  return %dx : tensor<?x64xbf16>
}

// -----

func.func @f64_daux(%x: tensor<?x64xf32>, %wg: tensor<64x4xf32>, %w1: tensor<8x4x8x8xf32>, %w2: tensor<8x8x4x8xf32>, %dy: tensor<?x64xf32>, %daux: tensor<f64>) -> tensor<?x64xf32> {
  // expected-error @+1 {{is lowered for an f32 daux only, got 'f64'}}
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {a = 8, e = 8, f = 8, g = 8, r = 4} d_in 64 d_out 64 experts 4 top_k 2 (%x, %wg, %w1, %w2) grad (%dy, %daux)
      : (tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>, tensor<?x64xf32>, tensor<f64>) -> (tensor<?x64xf32>, tensor<64x4xf32>, tensor<8x4x8x8xf32>, tensor<8x8x4x8xf32>)
  return %dx : tensor<?x64xf32>
}
