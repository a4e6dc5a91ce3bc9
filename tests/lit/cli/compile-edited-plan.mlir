// A layer's #einstruct.cuda_plan is what its kernels are emitted from: a
// plan edited in the IR (here @edited: the forward on the portable kernel
// with 32 tokens and 8 f-blocks per block, the backward-input on the sm_90a
// kernel with tile 8:2:3) is kept by --einstruct-plan-cuda and reaches the
// generated code; a layer without one (@fresh) gets the planner's.
// tests/cuda/compile_examples.sh compiles these kernels with nvcc.
// RUN: einstruct-opt %s --einstruct-plan-cuda | FileCheck %s --check-prefix=KEPT
// KEPT-LABEL: func.func @edited
// KEPT: #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [32, 8, 72, 100352], backward_input = [64, 16, 72, 174080], hopper_backward_input = [8, 2, 3, 1, 217136]>
// KEPT-LABEL: func.func @fresh
// KEPT: #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [64, 16, 72, 174080], backward_input = [64, 16, 72, 174080], hopper_forward = [16, 1, 7, 1, 220272], hopper_backward_input = [16, 1, 7, 1, 220272], tma_grads = true>

// RUN: rm -rf %t && einstruct compile %s -o %t | FileCheck %s --check-prefix=SAID
// SAID: wrote 2 layer libraries of {{.*}}compile-edited-plan.mlir to {{.*}} (bf16, sm_90a); manifest.json lists them
// RUN: FileCheck %s --input-file=%t/edited.h --check-prefix=WHY
// WHY: forward: TT=32 tokens, FC=8 of 64 f-blocks (8 chunk(s)), 100352 B shared memory of a 225280 B budget; backward-input: wgmma/TMA, FC=8 NWG=2 STAGES=3 CL=1 (tile from #einstruct.cuda_plan)
// RUN: FileCheck %s --input-file=%t/edited.cu --check-prefix=EDITED
// EDITED: struct Fwd {
// EDITED: static constexpr int TT = 32, FC = 8, K2P = 72;
// EDITED: struct Bwd {
// EDITED: static constexpr int TT = 64, FC = 16, K2P = 72;
// EDITED: struct HBwd {
// EDITED: static constexpr int FC = 8, NWG = 2, STAGES = 3, CL = 1;
// EDITED-NOT: struct HFwd
// RUN: FileCheck %s --input-file=%t/fresh.h --check-prefix=FRESH
// FRESH: forward: wgmma/TMA, FC=16 NWG=1 STAGES=7 CL=1 (tile from the tuning table)
// RUN: FileCheck %s --input-file=%t/manifest.json --check-prefix=MANIFEST
// MANIFEST: "cuda_plan": "#einstruct.cuda_plan<kernel = \"fused_two_stage\", arch = \"sm_90a\", dtype = \"bf16\", padded_in = 4096, padded_out = 4096, forward = [32, 8, 72, 100352], backward_input = [64, 16, 72, 174080], hopper_backward_input = [8, 2, 3, 1, 217136]>",
// MANIFEST: "function": "edited",

// A plan for one target is not silently replaced by another's: compiling
// for sm_80 is an error at the op, and no file is written.
// RUN: not einstruct compile %s --arch sm_80 -o %t/sm80 2>&1 | FileCheck %s --check-prefix=ARCH
// ARCH: einstruct: error: {{.*}}compile-edited-plan.mlir:[[@LINE+4]]:8: einstruct.cuda_plan: planned for sm_90a bf16, not for sm_80 bf16 (remove the attribute to plan again)
// RUN: not ls %t/sm80/edited.cu

func.func @edited(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b)
         {einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage", arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096, forward = [32, 8, 72, 100352], backward_input = [64, 16, 72, 174080], hopper_backward_input = [8, 2, 3, 1, 217136]>}
         : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

func.func @fresh(%x: tensor<?x4096xf32>, %a: tensor<64x64x64xf32>, %b: tensor<64x64x64xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 64, a = 64, f = 64, e = 64} d_in 4096 d_out 4096 (%x, %a, %b) : (tensor<?x4096xf32>, tensor<64x64x64xf32>, tensor<64x64x64xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}
