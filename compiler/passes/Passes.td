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

#endif
