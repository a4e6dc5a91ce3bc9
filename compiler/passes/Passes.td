#ifndef EINSTRUCT_PASSES
#define EINSTRUCT_PASSES

include "mlir/Pass/PassBase.td"

def AnnotateCost : Pass<"einstruct-annotate-cost"> {
  let summary = "Attach exact params/FLOPs and ω/ψ/ν to every einstruct op";
  let description = [{
    Each `einstruct.layer` gets `einstruct.params`, `einstruct.flops`
    (multiply-adds per input vector), `einstruct.rank_bound`,
    `einstruct.family` and, where defined, `einstruct.omega`, `einstruct.psi`
    and `einstruct.nu`. Each `einstruct.contract` with static shapes gets
    `einstruct.flops` (multiply-adds of the whole contraction).
  }];
}

def SelectStructure : Pass<"einstruct-select-structure", "mlir::ModuleOp"> {
  let summary = "Replace dense einstruct.layer ops by the best structure "
                "within a budget";
  let description = [{
    Every `einstruct.layer` whose einsum is a plain dense matrix ("i,oi->o")
    is replaced by the structure the search ranks first under the budget:
    the pass options, or an `einstruct.budget` dictionary on the op
    (`max_flops_ratio`, `max_params`, `min_psi`, `max_omega`) which wins.
    The dense weight argument of the enclosing function is replaced by the
    structure's weight tensors, appended as new arguments; the chosen
    structure and why are recorded as `einstruct.selected`. Functions that
    are called elsewhere are left alone (their signature would change).
  }];
  let options = [
    Option<"maxFlopsRatio", "max-flops-ratio", "double", "0.25",
           "max multiply-adds as a fraction of the dense layer's">,
    Option<"maxParams", "max-params", "int64_t", "0", "max params (0: none)">,
    Option<"minPsi", "min-psi", "double", "0", "min rank exponent ψ">,
    Option<"objective", "objective", "std::string", "\"paper\"",
           "paper, flops, params, params-per-flop or roofline">,
    Option<"device", "device", "std::string", "\"h100-sxm\"",
           "GPU for the roofline objective">,
    Option<"grid", "grid", "int", "12", "θ step 1/grid">,
  ];
}

#endif
