// RUN: einstruct-opt %s --einstruct-select-structure -split-input-file -verify-diagnostics

func.func @impossible(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{no structure for 64x64 meets the budget}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         {einstruct.budget = {max_flops_ratio = 0.0001, min_psi = 1.0}}
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @bad_key(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{einstruct.budget has unknown key 'max_flop'}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         {einstruct.budget = {max_flop = 3}}
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @called(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{@called is called elsewhere}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
func.func @caller(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  %y = func.call @called(%x, %w) : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @nan_budget(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{einstruct.budget.max_flops_ratio must be a finite number, not nan}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         {einstruct.budget = {max_flops_ratio = 0x7FF8000000000000 : f64}}
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @psi_range(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{einstruct.budget.min_psi must be in [0, 1]}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         {einstruct.budget = {min_psi = 1.5}}
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @fractional_params(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{einstruct.budget.max_params must be a whole number >= 0}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         {einstruct.budget = {max_params = 2.5}}
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
