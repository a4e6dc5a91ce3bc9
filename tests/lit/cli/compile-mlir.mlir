// `einstruct compile FILE.mlir`: dense layers in einstruct IR become the
// structure --einstruct-select-structure picks (the op's einstruct.budget,
// else 1/4 of the dense MACs), every layer is planned, and each layer
// function is a library named after it; other functions are left out.
// RUN: rm -rf %t && einstruct compile %s -o %t | FileCheck %s --check-prefix=SAID
// SAID: wrote 2 layer libraries of {{.*}}compile-mlir.mlir to {{.*}} (bf16, sm_90a), 1 other function(s) left out; manifest.json lists them
// RUN: FileCheck %s --input-file=%t/manifest.json
// The budget of 1/32 with ψ = 1 at 4096 is Monarch-64, on the sm_90a kernel
// with the tuning table's tile.
// CHECK: "cuda_plan": "#einstruct.cuda_plan<kernel = \"fused_two_stage\", arch = \"sm_90a\", dtype = \"bf16\", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080], hopper_forward = [16, 1, 7, 1, 220272], hopper_backward_input = [16, 1, 7, 1, 220272], tma_grads = true>",
// CHECK: "einsum": "ga,fga,feg->fe a=64,e=64,f=64,g=64 d_in=4096 d_out=4096",
// CHECK: "function": "attn_proj",
// DYAD (a sum of two block-diagonal terms) is one library on cuBLAS.
// CHECK: "cuda_plan": "#einstruct.cuda_plan<kernel = \"cublas\"
// CHECK: "einsum": "ki,koi->ko i=16,k=4,o=24 + ki,koi->ko i=16,k=4,o=24 d_in=64 d_out=96",
// CHECK: "function": "dyad",
// CHECK: "kernels": "cuBLAS: term 1: 4 blocks of 16 -> 24
// CHECK: "skipped": [
// CHECK-NEXT: "double"
// RUN: FileCheck %s --input-file=%t/attn_proj.h --check-prefix=HEADER
// HEADER: int attn_proj_forward(

// --emit planned: the module after both passes.
// RUN: einstruct compile %s --emit planned --arch sm_80 --dtype f32 -o %t
// RUN: FileCheck %s --input-file=%t/compile-mlir.mlir --check-prefix=PLANNED
// PLANNED: func.func @attn_proj(%arg0: tensor<?x4096xf32>, %arg1: tensor<64x64x64xf32>, %arg2: tensor<64x64x64xf32>)
// PLANNED: #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_80", dtype = "f32"
// PLANNED-SAME: einstruct.selected = "monarch: omega=0, psi=1

// Errors carry the file's line and column.
// RUN: printf 'func.func @f() {\n  einstruct.nope\n}\n' > %t/bad.mlir
// RUN: not einstruct compile %t/bad.mlir -o %t/bad 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: einstruct: error: {{.*}}bad.mlir:2:3: custom op 'einstruct.nope' is unknown

func.func @attn_proj(%x: tensor<?x4096xf32>, %w: tensor<4096x4096xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "i,oi->o" sizes {i = 4096, o = 4096} d_in 4096 d_out 4096 (%x, %w)
         {einstruct.budget = {max_flops_ratio = 0.03125, min_psi = 1.0}}
         : (tensor<?x4096xf32>, tensor<4096x4096xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

func.func @dyad(%x: tensor<?x64xf32>, %a: tensor<4x24x16xf32>, %b: tensor<4x24x16xf32>) -> tensor<?x96xf32> {
  %y1 = einstruct.layer "ki,koi->ko" sizes {k = 4, i = 16, o = 24} d_in 64 d_out 96 (%x, %a)
         : (tensor<?x64xf32>, tensor<4x24x16xf32>) -> tensor<?x96xf32>
  %y2 = einstruct.layer "ki,koi->ko" sizes {k = 4, i = 16, o = 24} d_in 64 d_out 96 (%x, %b)
         : (tensor<?x64xf32>, tensor<4x24x16xf32>) -> tensor<?x96xf32>
  %y = arith.addf %y1, %y2 : tensor<?x96xf32>
  return %y : tensor<?x96xf32>
}

func.func @double(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
