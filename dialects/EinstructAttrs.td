// Attributes of the einstruct dialect.
#ifndef EINSTRUCT_ATTRS
#define EINSTRUCT_ATTRS

include "EinstructDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

// The CUDA kernel configuration the planner chose for one layer
// (--einstruct-plan-cuda): what compiler/cuda/CudaPlan.h decides, as IR.
def Einstruct_CudaPlanAttr : AttrDef<Einstruct_Dialect, "CudaPlan"> {
  let mnemonic = "cuda_plan";
  let summary = "The CUDA kernels and tiles chosen for one layer";
  let description = [{
    `kernel` is `fused_two_stage` (the two-factor layers: Monarch, BTT, ...),
    `grouped_moe` (BTT-MoE: one expert's rank-1 layer per routed token) or
    `cublas` (one-weight terms: dense, block-diagonal, DYAD). For the fused
    kernels, `forward` and `backward_input` are the portable kernel's tile
    [TT tokens, FC f-blocks, K2P padded stage-2 reduction, shared-memory
    bytes]; on sm_90a a role that runs the wgmma/TMA kernel also has
    `hopper_forward` / `hopper_backward_input` = [FC, NWG, STAGES, CL,
    shared-memory bytes], and `tma_grads` says the weight gradients read its
    stage 1 through TMA. `padded_in` / `padded_out` are the layer's padded
    feature sizes.

    ```mlir
    einstruct.cuda_plan = #einstruct.cuda_plan<kernel = "fused_two_stage",
      arch = "sm_90a", dtype = "bf16", padded_in = 4096, padded_out = 4096,
      forward = array<i64: 64, 22, 64, 221184>, ...>
    ```
  }];
  let parameters = (ins
    StringRefParameter<"kernel kind">:$kernel,
    StringRefParameter<"sm_80 or sm_90a">:$arch,
    StringRefParameter<"f32, bf16 or f16">:$dtype,
    "int64_t":$padded_in,
    "int64_t":$padded_out,
    OptionalParameter<"::mlir::DenseI64ArrayAttr">:$forward,
    OptionalParameter<"::mlir::DenseI64ArrayAttr">:$backward_input,
    OptionalParameter<"::mlir::DenseI64ArrayAttr">:$hopper_forward,
    OptionalParameter<"::mlir::DenseI64ArrayAttr">:$hopper_backward_input,
    DefaultValuedParameter<"bool", "false">:$tma_grads);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // EINSTRUCT_ATTRS
