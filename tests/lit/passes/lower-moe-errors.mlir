// RUN: einstruct-opt %s --einstruct-lower-moe -verify-diagnostics

func.func @bf16(%x: tensor<?x64xbf16>, %wg: tensor<64x4xbf16>, %w1: tensor<8x4x8x8xbf16>, %w2: tensor<8x8x4x8xbf16>) -> (tensor<?x64xbf16>, tensor<f32>) {
  // expected-error @+1 {{is lowered for f32 only, got 'bf16'}}
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {a = 8, e = 8, f = 8, g = 8, r = 4} d_in 64 d_out 64 experts 4 top_k 2 (%x, %wg, %w1, %w2)
      : (tensor<?x64xbf16>, tensor<64x4xbf16>, tensor<8x4x8x8xbf16>, tensor<8x8x4x8xbf16>) -> (tensor<?x64xbf16>, tensor<f32>)
  return %y, %aux : tensor<?x64xbf16>, tensor<f32>
}
