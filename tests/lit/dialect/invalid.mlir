// RUN: einstruct-opt %s -split-input-file -verify-diagnostics

func.func @weight_count(%x: tensor<?x16xf32>, %a: tensor<4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{einsum 'ga,fga,feg->fe' has 2 weight operand(s) but 1 were given}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a) : (tensor<?x16xf32>, tensor<4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @weight_shape(%x: tensor<?x16xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x2xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{weight #1 dimension 2 (index 'g') is 2 but sizes gives 4}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<?x16xf32>, tensor<4x4x4xf32>, tensor<4x4x2xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @weight_rank(%x: tensor<?x16xf32>, %a: tensor<4x16xf32>, %b: tensor<4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{weight #0 has rank 2 but its einsum operand 'fga' has 3 indices}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @bad_spec(%x: tensor<?x16xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{einsum: output index 'f' repeated at column 14}}
  %y = einstruct.layer "ga,fga,feg->ff" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<?x16xf32>, tensor<4x4x4xf32>, tensor<4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @missing_size(%x: tensor<?x16xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{no size given for index 'e'}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<?x16xf32>, tensor<4x4x4xf32>, tensor<4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @d_in(%x: tensor<?x12xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{input feature dimension is 12 but d_in is 16}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<?x12xf32>, tensor<4x4x4xf32>, tensor<4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @batch(%x: tensor<3x16xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x4xf32>) -> tensor<5x16xf32> {
  // expected-error @+1 {{batch dimension 0 differs: input 3, result 5}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<3x16xf32>, tensor<4x4x4xf32>, tensor<4x4x4xf32>) -> tensor<5x16xf32>
  return %y : tensor<5x16xf32>
}

// -----

func.func @int_type(%x: tensor<?x16xi32>, %a: tensor<4x4x4xi32>, %b: tensor<4x4x4xi32>) -> tensor<?x16xi32> {
  // expected-error @+1 {{element type must be a float type, got 'i32'}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 (%x, %a, %b) : (tensor<?x16xi32>, tensor<4x4x4xi32>, tensor<4x4x4xi32>) -> tensor<?x16xi32>
  return %y : tensor<?x16xi32>
}

// -----

func.func @theta(%x: tensor<?x16xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{theta: θα+θβ+θγ = 0.5, must be 1}}
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 theta [0.5, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0] (%x, %a, %b) : (tensor<?x16xf32>, tensor<4x4x4xf32>, tensor<4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @top_k(%x: tensor<?x16xf32>, %a: tensor<4x4x4x4xf32>, %b: tensor<4x4x4x4xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{top_k = 5 must be in [1, experts = 4]}}
  %y = einstruct.layer "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 4, e = 4, r = 4} d_in 16 d_out 16 (%x, %a, %b) {experts = 4, top_k = 5} : (tensor<?x16xf32>, tensor<4x4x4x4xf32>, tensor<4x4x4x4xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @contract_extent(%x: tensor<?x8x4xf32>, %a: tensor<8x8x8xf32>) -> tensor<?x8x8xf32> {
  // expected-error @+1 {{index 'a' is 4 in one operand but 8 in the rhs}}
  %z = einstruct.contract "nga,fga->nfg" %x, %a : tensor<?x8x4xf32>, tensor<8x8x8xf32> -> tensor<?x8x8xf32>
  return %z : tensor<?x8x8xf32>
}

// -----

func.func @contract_operands(%x: tensor<?x8x4xf32>, %a: tensor<8x8x8xf32>) -> tensor<?x8x8xf32> {
  // expected-error @+1 {{must have exactly two operands before '->'}}
  %z = einstruct.contract "nga,fga,f->nfg" %x, %a : tensor<?x8x4xf32>, tensor<8x8x8xf32> -> tensor<?x8x8xf32>
  return %z : tensor<?x8x8xf32>
}

// -----

func.func @route_top_k(%l: tensor<?x4xf32>) -> tensor<?x5xf32> {
  // expected-error @+1 {{top_k = 5 must be in [1, experts = 4]}}
  %g, %e, %a = einstruct.route %l top_k 5 : tensor<?x4xf32> -> tensor<?x5xf32>, tensor<?x5xi32>, tensor<f32>
  return %g : tensor<?x5xf32>
}

// -----

func.func @route_gates(%l: tensor<?x4xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{gates must be [batch, top_k = 2], got 'tensor<?x3xf32>'}}
  %g, %e, %a = einstruct.route %l top_k 2 : tensor<?x4xf32> -> tensor<?x3xf32>, tensor<?x2xi32>, tensor<f32>
  return %g : tensor<?x3xf32>
}

// -----

func.func @route_dynamic_experts(%l: tensor<?x?xf32>) -> tensor<f32> {
  // expected-error @+1 {{logits must be [batch, experts] with a static expert count}}
  %g, %e, %a = einstruct.route %l top_k 1 : tensor<?x?xf32> -> tensor<?x1xf32>, tensor<?x1xi32>, tensor<f32>
  return %a : tensor<f32>
}

// -----

func.func @moe_router(%x: tensor<?x16xf32>, %wg: tensor<16x3xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>) -> tensor<f32> {
  // expected-error @+1 {{router must be [d_in = 16, experts = 4], got 'tensor<16x3xf32>'}}
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b) : (tensor<?x16xf32>, tensor<16x3xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>)
  return %aux : tensor<f32>
}

// -----

func.func @moe_rank_size(%x: tensor<?x16xf32>, %wg: tensor<16x8xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>) -> tensor<f32> {
  // expected-error @+1 {{rank letter 'r' has size 4 but experts = 8}}
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 8 top_k 2 (%x, %wg, %a, %b) : (tensor<?x16xf32>, tensor<16x8xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>)
  return %aux : tensor<f32>
}

// -----

func.func @moe_no_rank(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<4x4x4xf32>, %b: tensor<4x4x4xf32>) -> tensor<f32> {
  // expected-error @+1 {{'ga,fga,feg->fe' has no rank letter (in both weights, in neither x nor y) to index the experts}}
  %y, %aux = einstruct.moe_layer "ga,fga,feg->fe" sizes {g = 4, a = 4, f = 4, e = 4} d_in 16 d_out 16 experts 4 top_k 2 (%x, %wg, %a, %b) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<4x4x4xf32>, tensor<4x4x4xf32>) -> (tensor<?x16xf32>, tensor<f32>)
  return %aux : tensor<f32>
}

// -----

func.func @moe_grad_daux(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>, %dy: tensor<?x12xf32>, %daux: tensor<1xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{daux must be a rank-0 tensor of a float type}}
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b) grad (%dy, %daux) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>, tensor<?x12xf32>, tensor<1xf32>) -> (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
  return %dx : tensor<?x16xf32>
}

// -----

func.func @moe_grad_dy(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>, %dy: tensor<?x16xf32>, %daux: tensor<f32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{dy must be [batch, d_out = 12] of the input's element type}}
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b) grad (%dy, %daux) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>, tensor<?x16xf32>, tensor<f32>) -> (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
  return %dx : tensor<?x16xf32>
}

// -----

func.func @moe_grad_types(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>, %dy: tensor<?x12xf32>, %daux: tensor<f32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{each gradient must have its operand's type}}
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b) grad (%dy, %daux) : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>, tensor<?x12xf32>, tensor<f32>) -> (tensor<?x16xf32>, tensor<4x16xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
  return %dx : tensor<?x16xf32>
}

// -----

func.func @moe_grad_router(%x: tensor<?x16xf32>, %wg: tensor<16x3xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>, %dy: tensor<?x12xf32>, %daux: tensor<f32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{router must be [d_in = 16, experts = 4], got 'tensor<16x3xf32>'}}
  %dx, %dwg, %dw:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b) grad (%dy, %daux) : (tensor<?x16xf32>, tensor<16x3xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>, tensor<?x12xf32>, tensor<f32>) -> (tensor<?x16xf32>, tensor<16x3xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
  return %dx : tensor<?x16xf32>
}

// -----

// A NaN budget is refused by the verifier, before any pass reads it.
func.func @nan_budget(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{einstruct.budget.max_flops_ratio must be a finite number, not nan}}
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         {einstruct.budget = {max_flops_ratio = 0x7FF8000000000000 : f64}}
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// #einstruct.cuda_plan is verified field by field.
// expected-error @+1 {{kernel: unknown 'fused' (known: fused_two_stage, grouped_moe, cublas)}}
func.func private @kernel() attributes {p = #einstruct.cuda_plan<kernel = "fused", arch = "sm_90a", dtype = "bf16", padded_in = 64, padded_out = 64>}

// -----

// expected-error @+1 {{arch: unknown 'sm_70' (known: sm_80, sm_90a)}}
func.func private @arch() attributes {p = #einstruct.cuda_plan<kernel = "cublas", arch = "sm_70", dtype = "bf16", padded_in = 64, padded_out = 64>}

// -----

// expected-error @+1 {{forward: missing for kernel 'fused_two_stage'}}
func.func private @no_tile() attributes {p = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_80", dtype = "f32", padded_in = 64, padded_out = 64>}

// -----

// expected-error @+1 {{forward: 4 values expected, 3 given}}
func.func private @short_tile() attributes {p = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_80", dtype = "f32", padded_in = 64, padded_out = 64, forward = [64, 6, 68], backward_input = [64, 6, 68, 147456]>}

// -----

// expected-error @+1 {{hopper_forward: not taken by kernel 'fused_two_stage' on this arch and dtype}}
func.func private @hopper_f32() attributes {p = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "f32", padded_in = 64, padded_out = 64, forward = [64, 6, 68, 147456], backward_input = [64, 6, 68, 147456], hopper_forward = [16, 1, 7, 1, 220272]>}

// -----

// expected-error @+1 {{tma_grads needs both roles on the sm_90a kernel}}
func.func private @tma() attributes {p = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 64, padded_out = 64, forward = [64, 6, 68, 147456], backward_input = [64, 6, 68, 147456], tma_grads = true>}

// -----

// expected-error @+1 {{forward: not taken by kernel 'cublas'}}
func.func private @cublas_tile() attributes {p = #einstruct.cuda_plan<kernel = "cublas", arch = "sm_80", dtype = "f32", padded_in = 64, padded_out = 64, forward = [64, 6, 68, 147456]>}

// -----

func.func @decays_rank(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{a must be [sequences, chunks, chunk steps, heads], got 'tensor<?x8xf32>'}}
  %w, %e, %s, %x = einstruct.chunk_decays %a : tensor<?x8xf32> -> tensor<?x1x2x4x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x2xf32>
  return
}

// -----

func.func @decays_dynamic_chunk(%a: tensor<?x?x4x1xf32>) {
  // expected-error @+1 {{a's chunks, chunk steps and heads must be static and positive}}
  %w, %e, %s, %x = einstruct.chunk_decays %a : tensor<?x?x4x1xf32> -> tensor<?x1x2x4x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x2xf32>
  return
}

// -----

func.func @decays_chunk_shape(%a: tensor<?x2x4x1xf32>) {
  // expected-error @+1 {{chunk must be 'tensor<?x1x2xf32>', got 'tensor<?x1x4xf32>'}}
  %w, %e, %s, %x = einstruct.chunk_decays %a : tensor<?x2x4x1xf32> -> tensor<?x1x2x4x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x4xf32>
  return
}

// -----

func.func @decays_grad_type(%a: tensor<?x2x4x1xf32>, %w: tensor<?x1x2x4x4xf32>, %e: tensor<?x1x2x4xf32>, %x: tensor<?x1x2xf32>) {
  // expected-error @+1 {{dfrom_start must be 'tensor<?x1x2x4xf32>', got 'tensor<?x1x2xf32>'}}
  %da = einstruct.chunk_decays_grad %a grad (%w, %e, %x, %x) : tensor<?x2x4x1xf32>, tensor<?x1x2x4x4xf32>, tensor<?x1x2x4xf32>, tensor<?x1x2xf32>, tensor<?x1x2xf32> -> tensor<?x2x4x1xf32>
  return
}

// -----

func.func @scan_rank(%s: tensor<?x2x3x4xf32>, %g: tensor<?x3x2xf32>) {
  // expected-error @+1 {{states must be [sequences, chunks, heads, head_dim, state]}}
  %e = einstruct.chunk_scan %s, %g : tensor<?x2x3x4xf32>, tensor<?x3x2xf32> -> tensor<?x2x3x4xf32>
  return
}

// -----

func.func @scan_decay(%s: tensor<?x2x3x4x5xf32>, %g: tensor<?x2x3xf32>) {
  // expected-error @+1 {{decay must be 'tensor<?x3x2xf32>', got 'tensor<?x2x3xf32>'}}
  %e = einstruct.chunk_scan %s, %g : tensor<?x2x3x4x5xf32>, tensor<?x2x3xf32> -> tensor<?x2x3x4x5xf32>
  return
}

// -----

func.func @scan_grad_types(%s: tensor<?x2x3x4x5xf32>, %g: tensor<?x3x2xf32>, %d: tensor<?x2x3x4x4xf32>) {
  // expected-error @+1 {{dentering and dstates must have the states' type, ddecay the decay's}}
  %ds, %dg = einstruct.chunk_scan_grad %s, %g grad %d : tensor<?x2x3x4x5xf32>, tensor<?x3x2xf32>, tensor<?x2x3x4x4xf32> -> tensor<?x2x3x4x5xf32>, tensor<?x3x2xf32>
  return
}

// -----

func.func @scan_no_chunks(%s: tensor<?x0x3x4x5xf32>, %g: tensor<?x3x0xf32>) {
  // expected-error @+1 {{states' chunks and heads must be static and positive}}
  %e = einstruct.chunk_scan %s, %g : tensor<?x0x3x4x5xf32>, tensor<?x3x0xf32> -> tensor<?x0x3x4x5xf32>
  return
}

// -----

func.func @decays_empty_chunk(%a: tensor<?x2x0x1xf32>) {
  // expected-error @+1 {{a's chunks, chunk steps and heads must be static and positive}}
  %w, %e, %s, %x = einstruct.chunk_decays %a : tensor<?x2x0x1xf32> -> tensor<?x1x2x0x0xf32>, tensor<?x1x2x0xf32>, tensor<?x1x2x0xf32>, tensor<?x1x2xf32>
  return
}

// -----

func.func @reverse_dim(%x: tensor<?x5x3xf32>) {
  // expected-error @+1 {{dim 3 is outside the input's rank 3}}
  %r = einstruct.reverse %x dim 3 : tensor<?x5x3xf32>
  return
}

// -----

func.func @reverse_dynamic(%x: tensor<?x5x3xf32>) {
  // expected-error @+1 {{dim 0 of 'tensor<?x5x3xf32>' is dynamic: the reversal needs its extent}}
  %r = einstruct.reverse %x dim 0 : tensor<?x5x3xf32>
  return
}

// -----

func.func @unary_kind(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{kind "tanh" is not one of identity, exp, sigmoid, silu, softplus, rsqrt, sin, cos, silu_grad, sigmoid_grad, rsqrt_grad}}
  %y = einstruct.unary "tanh" %x : tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

func.func @unary_integers(%x: tensor<4xi32>) -> tensor<4xi32> {
  // expected-error @+1 {{takes a tensor of floats, got 'tensor<4xi32>'}}
  %y = einstruct.unary "exp" %x : tensor<4xi32>
  return %y : tensor<4xi32>
}

// -----

func.func @unary_scale(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{scale and shift must be finite}}
  %y = einstruct.unary "exp" %x scale 0x7FF0000000000000 : tensor<4xf32>
  return %y : tensor<4xf32>
}
